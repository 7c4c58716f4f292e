package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// These tests need to see what promgate sends upstream, which no real
// Prometheus or Alertmanager shows: the upstream is a recorder (or a raw
// HTTP/1.1 server that misbehaves on purpose), promgate is the real binary.

// recorder is an upstream that keeps the tenancy header of every request
// it receives, by path, and answers what promgate's filters expect.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]string // path -> X-Scope-OrgID values of the last request
	body map[string]int      // path -> body bytes of the last request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	rec.mu.Lock()
	rec.seen[r.URL.Path] = r.Header.Values("X-Scope-OrgID")
	rec.body[r.URL.Path] = int(n)
	rec.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasSuffix(r.URL.Path, "/api/v2/alerts"):
		io.WriteString(w, "[]")
	case strings.HasPrefix(r.URL.Path, "/api/v1/"):
		io.WriteString(w, `{"status":"success","data":[]}`)
	default:
		io.WriteString(w, "<html></html>")
	}
}

func (rec *recorder) last(path string) ([]string, int, bool) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	v, ok := rec.seen[path]
	return v, rec.body[path], ok
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.seen, rec.body = map[string][]string{}, map[string]int{}
}

// rawExchange sends a request written by hand (so that its Connection and
// Transfer-Encoding headers are exactly the test's) and returns the status.
func rawExchange(t *testing.T, addr, head string, body []byte, chunked bool) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var b bytes.Buffer
	b.WriteString(head)
	switch {
	case chunked:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 64<<10)
			fmt.Fprintf(&b, "%x\r\n", n)
			b.Write(rest[:n])
			b.WriteString("\r\n")
			rest = rest[n:]
		}
		b.WriteString("0\r\n\r\n")
	case body != nil:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
		b.Write(body)
	default:
		b.WriteString("\r\n")
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTenancyHeaderSurvivesConnection sends, on every path promgate has
// (enforced queries, filtered listings, an unrestricted client's small and
// streamed bodies, the UI, Alertmanager's API and UI), requests whose
// Connection header names the tenancy header: the upstream must always get
// the one promgate renders, never the client's and never none.
func TestTenancyHeaderSurvivesConnection(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	rec := &recorder{}
	rec.reset()
	up := &http.Server{Handler: rec}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(l)
	t.Cleanup(func() { up.Close() })
	upURL := "http://" + l.Addr().String()

	dir := t.TempDir()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %[1]s
    headers: {X-Scope-OrgID: "{{ .User }}"}
  alertmanager:
    url: %[1]s/am
    headers: {X-Scope-OrgID: "{{ .User }}"}
authentication:
  basic_auth_users:
    alice: %[2]s
    root: %[3]s
policies:
  - name: team-a
    subjects: ["user:alice"]
    selectors: ['{team="a"}']
  - name: admins
    subjects: ["user:root"]
    allow_all: true
`, upURL, hash("alice-pw"), hash("root-pw"))
	file := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-headers", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(gate.url, "http://")
	auth := func(user string) string {
		return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+user+"-pw")) + "\r\n"
	}
	form := []byte(url.Values{"query": {"up"}}.Encode())
	big := bytes.Repeat([]byte("w"), 2<<20)

	type path struct {
		name, user, method, target, upPath string
		body                               []byte
		chunked                            bool
		extra                              string
	}
	paths := []path{
		{"enforced query", "alice", "GET", "/api/v1/query?query=up", "/api/v1/query", nil, false, ""},
		{"enforced query, form", "alice", "POST", "/api/v1/query", "/api/v1/query", form, false, "Content-Type: application/x-www-form-urlencoded\r\n"},
		{"filtered listing", "alice", "GET", "/api/v1/series?match[]=up", "/api/v1/series", nil, false, ""},
		{"UI page", "alice", "GET", "/classic/graph", "/classic/graph", nil, false, ""},
		{"unrestricted GET", "root", "GET", "/api/v1/status/config", "/api/v1/status/config", nil, false, ""},
		{"unrestricted small body", "root", "POST", "/api/v1/write", "/api/v1/write", []byte("x"), false, ""},
		{"unrestricted chunked body", "root", "POST", "/api/v1/write", "/api/v1/write", []byte("xyz"), true, ""},
		{"unrestricted 2 MiB body", "root", "POST", "/api/v1/write", "/api/v1/write", big, false, ""},
		{"unrestricted 2 MiB chunked body", "root", "POST", "/api/v1/write", "/api/v1/write", big, true, ""},
		{"Alertmanager listing", "alice", "GET", "/alertmanager/api/v2/alerts", "/am/api/v2/alerts", nil, false, ""},
		{"Alertmanager UI", "alice", "GET", "/alertmanager/", "/am/", nil, false, ""},
		{"Alertmanager, unrestricted chunked post", "root", "POST", "/alertmanager/api/v2/alerts", "/am/api/v2/alerts", []byte("[]"), true, "Content-Type: application/json\r\n"},
		{"Alertmanager, unrestricted 2 MiB post", "root", "POST", "/alertmanager/api/v2/alerts", "/am/api/v2/alerts", big, false, "Content-Type: application/json\r\n"},
	}
	connections := []string{
		"",
		"Connection: X-Scope-OrgID\r\n",
		"Connection: x-scope-orgid\r\n",
		"Connection: keep-alive, X-Scope-OrgID\r\n",
		"Connection: close,X-Scope-OrgID , te\r\n",
		"Connection: keep-alive\r\nConnection: X-Scope-OrgID\r\n",
	}
	for _, p := range paths {
		for _, conn := range connections {
			name := p.name + " / " + strings.ReplaceAll(strings.TrimSpace(conn), "\r\n", " | ")
			t.Run(name, func(t *testing.T) {
				rec.reset()
				head := p.method + " " + p.target + " HTTP/1.1\r\nHost: " + addr + "\r\n" + auth(p.user) +
					"X-Scope-OrgID: someone-else\r\n" + conn + p.extra
				code := rawExchange(t, addr, head, p.body, p.chunked)
				got, n, ok := rec.last(p.upPath)
				if !ok {
					t.Fatalf("status %d and nothing reached %s upstream", code, p.upPath)
				}
				if len(got) != 1 || got[0] != p.user {
					t.Errorf("status %d: upstream got X-Scope-OrgID %q, want [%q]", code, got, p.user)
				}
				if p.user == "root" && n != len(p.body) {
					t.Errorf("upstream got %d body bytes, want %d", n, len(p.body))
				}
			})
		}
	}
}

// lateServer is a raw HTTP/1.1 upstream that answers each query with the
// query it received, and 30 ms after every third answer, while the
// connection is idle, writes that answer once more, unasked: a proxy in
// between that sends a body after a HEAD, or a 408 on an idle connection.
type lateServer struct {
	l             net.Listener
	mu            sync.Mutex
	answers, late int
}

// pending reports whether a late answer is still to be written.
func (s *lateServer) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.late < s.answers/3
}

func (s *lateServer) serve() {
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		go s.conn(c)
	}
}

func (s *lateServer) conn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		q := req.URL.Query().Get("query")
		payload, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{
			"resultType": "vector", "result": []any{map[string]any{"metric": map[string]string{"query": q}, "value": []any{1, "1"}}},
		}})
		answer := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(payload), payload)
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		s.mu.Lock()
		s.answers++
		late := s.answers%3 == 0
		s.mu.Unlock()
		if late {
			time.AfterFunc(30*time.Millisecond, func() {
				_, _ = io.WriteString(c, answer)
				s.mu.Lock()
				s.late++
				s.mu.Unlock()
			})
		}
	}
}

// TestLateUpstreamBytesGoNowhere has tenants a and b query in turn through
// promgate to an upstream that sends unsolicited answers on idle
// connections: each tenant must get the answer to its own query, every
// time.
func TestLateUpstreamBytesGoNowhere(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &lateServer{l: l}
	go up.serve()
	t.Cleanup(func() { l.Close() })

	dir := t.TempDir()
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: http://%s
authentication:
  trusted_header: {name: X-Tenant, trusted_sources: [127.0.0.1/32]}
policies:
  - name: own-team
    subjects: ["*"]
    selectors: ['{team="{{ .User }}"}']
`, l.Addr())
	file := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-late", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}
	wrong := 0
	const rounds = 60
	for i := range rounds {
		tenant := []string{"a", "b"}[i%2]
		req, _ := http.NewRequest("GET", gate.url+"/api/v1/query?query=up", nil)
		req.Header.Set("X-Tenant", tenant)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("round %d: status %d %s", i, resp.StatusCode, body)
		}
		var ans struct {
			Data struct {
				Result []struct{ Metric map[string]string }
			}
		}
		if err := json.Unmarshal(body, &ans); err != nil || len(ans.Data.Result) != 1 {
			t.Fatalf("round %d: unreadable answer %s (%v)", i, body, err)
		}
		if got := ans.Data.Result[0].Metric["query"]; !strings.Contains(got, `team="`+tenant+`"`) {
			wrong++
			t.Errorf("round %d: tenant %s got the answer to %s", i, tenant, got)
		}
		// The late bytes arrive while promgate's connection is idle.
		authEventually(t, 5*time.Second, "the late answer", func() error {
			if up.pending() {
				return fmt.Errorf("not written yet")
			}
			return nil
		})
	}
	if wrong > 0 {
		t.Errorf("%d of %d answers went to the wrong query", wrong, rounds)
	}
}

// TestReloadClosesOldPools reloads promgate while a tenant queries: the
// connections of the configurations replaced must close, so that the
// upstream sees as many as the current one keeps, not one more per reload.
func TestReloadClosesOldPools(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	rec := &recorder{}
	rec.reset()
	var mu sync.Mutex
	open := 0
	up := &http.Server{Handler: rec, ConnState: func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(l)
	t.Cleanup(func() { up.Close() })

	dir := t.TempDir()
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: http://%s
authentication:
  basic_auth_users:
    root: %s
  trusted_header: {name: X-Tenant, trusted_sources: [127.0.0.1/32]}
policies:
  - name: own-team
    subjects: ["*"]
    selectors: ['{team="{{ .User }}"}']
  - name: admins
    subjects: ["user:root"]
    allow_all: true
`, l.Addr(), authHash(t, "root-pw", bcrypt.MinCost))
	file := filepath.Join(dir, "promgate.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-pools", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr, "--config.auto-reload-interval=0"}
	})
	if err != nil {
		t.Fatal(err)
	}
	query := func() {
		req, _ := http.NewRequest("GET", gate.url+"/api/v1/series?match[]=up", nil)
		req.Header.Set("X-Tenant", "a")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("query: status %d", resp.StatusCode)
		}
	}
	query()
	const reloads = 5
	for range reloads {
		if code, body := reloadPost(t, gate.url, "root", "root-pw"); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
		query()
	}
	authEventually(t, 5*time.Second, "one upstream connection left", func() error {
		mu.Lock()
		defer mu.Unlock()
		if open != 1 {
			return fmt.Errorf("%d upstream connections open after %d reloads, want 1", open, reloads)
		}
		return nil
	})
}
