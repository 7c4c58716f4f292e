package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/testenv"
)

// replicasNginx is an nginx that spreads requests over the promgate
// replicas by least connections, with keep-alive connections to them; a
// request whose connection fails goes to the next replica, as nginx does
// by default for GET, and for the POSTs of the query endpoints, which are
// reads.
const replicasNginx = `worker_processes 1;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream promgate {
    least_conn;
    server %[2]s max_fails=1 fail_timeout=2s;
    server %[3]s max_fails=1 fail_timeout=2s;
    keepalive 16;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://promgate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
    }
    # Queries sent as POST are reads: resent like a GET when the replica's
    # connection failed (a replica stopping closes its idle ones). Never
    # for writes, which must not reach the upstream twice.
    location ~ ^/api/v1/(query|query_range|query_exemplars|series|labels)$ {
      proxy_pass http://promgate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout non_idempotent;
    }
  }
}
`

// policyRequests is the count of a policy's requests in a promgate's
// metrics.
func policyRequests(t *testing.T, metricsURL, policy string) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range scrapeFamilies(t, metricsURL, "text/plain")["promgate_policy_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "policy" && l.GetValue() == policy {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestReplicas runs two promgate replicas, sharing one configuration file,
// behind nginx (least_conn) in front of one Prometheus. Under load both are
// reloaded with a new user (one by SIGHUP, one on its internal listener),
// then one is stopped (SIGTERM to its PID: it finishes the requests in
// flight): nothing fails but requests in flight at those instants, and the
// other replica serves everything after.
func TestReplicas(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	nginx := findNginx(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()

	cfgFile := filepath.Join(dir, "promgate.yml")
	users := "    alice: " + authHash(t, "alice-pw", bcrypt.MinCost) + "\n"
	config := func(users string) string {
		return fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  basic_auth_users:
%spolicies:
  - {name: team-a, subjects: ["user:alice", "user:bob"], selectors: ['{team="a"}']}
`, prom.url, users)
	}
	authWriteFile(t, cfgFile, config(users))
	var gates [2]*server
	var internal [2]string
	for i := range gates {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		internal[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
		gates[i], err = startServer(t, fmt.Sprintf("promgate-replica-%d", i+1), dir, bin, func(addr string) []string {
			return []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr,
				fmt.Sprintf("--web.internal-listen-address=127.0.0.1:%d", port),
				"--config.auto-reload-interval=0"}
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	global := "daemon off;"
	if os.Geteuid() == 0 {
		global += " user root;" // workers must read the private temporary directory
	}
	front, err := startWith(t, testenv.Options{Name: "nginx-replicas", Dir: dir, Args: func(addr string) []string {
		conf := filepath.Join(dir, "nginx.conf")
		authWriteFile(t, conf, fmt.Sprintf(replicasNginx, dir, gates[0].Addr, gates[1].Addr, addr))
		return []string{nginx, "-c", conf, "-p", dir, "-g", global}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	if f := queryAs(context.Background(), front.url, "alice", "alice-pw", 0); f != "" {
		t.Fatalf("through nginx: %s", f)
	}
	if f := queryAs(context.Background(), front.url, "bob", "bob-pw", 0); f == "" {
		t.Fatal("bob is served before the reload that adds him")
	}

	const workers = 6
	start := time.Now()
	load := startLoad(workers, 2*time.Millisecond, func(ctx context.Context, _, i int) string {
		return queryAs(ctx, front.url, "alice", "alice-pw", i)
	})
	time.Sleep(3 * time.Second)

	// Both replicas reload the file they share, with bob added.
	authWriteFile(t, cfgFile, config(users+"    bob: "+authHash(t, "bob-pw", bcrypt.MinCost)+"\n"))
	reloading := time.Now()
	if err := syscall.Kill(gates[0].PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code, body := internalGet(t, http.MethodPost, internal[1]+"/-/reload"); code != 200 {
		t.Fatalf("POST /-/reload on the second replica's internal listener: %d %s", code, body)
	}
	for i, g := range gates {
		deadline := time.Now().Add(10 * time.Second)
		for queryAs(context.Background(), g.url, "bob", "bob-pw", 0) != "" {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d never served bob after its reload", i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	reloaded := time.Now()
	time.Sleep(2 * time.Second)

	served := [2]float64{}
	for i := range gates {
		served[i] = policyRequests(t, internal[i]+"/metrics", "team-a")
	}
	stopping := time.Now()
	gates[0].stop() // SIGTERM to its PID; returns once it has exited
	stopped := time.Now()
	time.Sleep(4 * time.Second)
	outs := load.stop()
	end := time.Now()
	if f := queryAs(context.Background(), front.url, "bob", "bob-pw", 0); f != "" {
		t.Errorf("bob through nginx after the reloads: %s", f)
	}

	failed := checkOnlyInFlightFailed(t, outs, start,
		window{"the reloads", reloading, reloaded}, window{"replica 1 stopping", stopping, stopped})
	t.Logf("replicas: %d requests from %d workers through nginx in %s, %d failed; replica 1 stopped in %s",
		len(outs), workers, end.Sub(start).Round(time.Millisecond), failed, stopped.Sub(stopping).Round(time.Millisecond))
	for _, p := range []window{
		{"two", start, reloading},
		{"reloading", reloading, reloaded},
		{"reloaded", reloaded, stopping},
		{"stopping 1", stopping, stopped},
		{"one", stopped, end},
	} {
		total, f := between(outs, p.from, p.to)
		t.Logf("  %-10s %6d requests, %d failed", p.name, total, f)
		if (p.name == "reloading" || p.name == "one") && f > 0 {
			t.Errorf("%s: %d of %d requests failed", p.name, f, total)
		}
	}
	t.Logf("  requests served before the stop: replica 1 %.0f, replica 2 %.0f", served[0], served[1])
	for i, n := range served {
		if n < float64(len(outs))/10 {
			t.Errorf("replica %d served %.0f requests of %d: nginx does not spread them", i+1, n, len(outs))
		}
	}
}
