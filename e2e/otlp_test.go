package e2e

// OTLP writes through promgate into a real Prometheus 3.16
// (--web.enable-otlp-receiver), sent by the OpenTelemetry Go SDK's
// OTLP/HTTP metrics exporter: a tenant's metrics arrive and are its own to
// query; another tenant's service is refused and nothing of it arrives;
// bad bodies are refused without reaching the upstream.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

const otlpPath = "/api/v1/otlp/v1/metrics"

// otlpService is what a tenant's SDK says of itself (its resource).
type otlpService struct {
	namespace, name, instance string
}

// otlpExport records a few instruments as the service with the SDK and
// exports them to promgate as u; the export's error is returned.
func otlpExport(t *testing.T, gateURL string, u remoteUser, svc otlpService, prefix string, gz bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(u.name+":"+u.password()))
	opts := []otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpointURL(gateURL + otlpPath),
		otlpmetrichttp.WithHeaders(map[string]string{"Authorization": auth}),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
	}
	if gz {
		opts = append(opts, otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	}
	exp, err := otlpmetrichttp.New(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewWithAttributes("",
		attribute.String("service.namespace", svc.namespace),
		attribute.String("service.name", svc.name),
		attribute.String("service.instance.id", svc.instance),
		attribute.String("deployment.environment", "e2e"),
	)
	// The reader exports when flushed (and at shutdown), not on a timer.
	reader := sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	meter := provider.Meter("e2e.otlp")
	orders, err := meter.Int64Counter(prefix+".orders.placed", metric.WithUnit("{order}"))
	if err != nil {
		t.Fatal(err)
	}
	orders.Add(ctx, 3, metric.WithAttributes(attribute.String("payment.method", "card")))
	duration, err := meter.Float64Histogram(prefix+".request.duration", metric.WithUnit("s"))
	if err != nil {
		t.Fatal(err)
	}
	duration.Record(ctx, 0.25)
	return provider.ForceFlush(ctx)
}

// otlpReceived is how many requests the upstream's OTLP receiver served.
func otlpReceived(t *testing.T, promURL string) float64 {
	t.Helper()
	resp, err := http.Get(promURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "prometheus_http_requests_total{") || !strings.Contains(line, `handler="`+otlpPath+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// otlpGateQuery runs expr through promgate as u and returns the series' labels.
func otlpGateQuery(t *testing.T, gateURL string, u remoteUser, expr string) []map[string]string {
	t.Helper()
	req, _ := http.NewRequest("GET", gateURL+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), nil)
	req.SetBasicAuth(u.name, u.password())
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("query %s as %s: status %d: %s", expr, u.name, resp.StatusCode, body)
	}
	var env struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
			}
		}
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("query %s as %s: %v %s", expr, u.name, err, body)
	}
	var out []map[string]string
	for _, r := range env.Data.Result {
		out = append(out, r.Metric)
	}
	return out
}

// postOTLP sends a hand-made OTLP body through promgate as u.
func postOTLP(t *testing.T, gateURL string, u remoteUser, body []byte, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", gateURL+otlpPath, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	req.SetBasicAuth(u.name, u.password())
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// otlpJSONGauge is an OTLP/JSON export of one gauge of a service.
func otlpJSONGauge(svc otlpService, name string, v float64) []byte {
	return []byte(fmt.Sprintf(`{"resourceMetrics":[{"resource":{"attributes":[`+
		`{"key":"service.namespace","value":{"stringValue":%q}},{"key":"service.name","value":{"stringValue":%q}},`+
		`{"key":"service.instance.id","value":{"stringValue":%q}}]},`+
		`"scopeMetrics":[{"scope":{"name":"handmade"},"metrics":[{"name":%q,"gauge":{"dataPoints":[{"asDouble":%v,"timeUnixNano":"%d"}]}}]}]}]}`,
		svc.namespace, svc.name, svc.instance, name, v, time.Now().UnixNano()))
}

func otlpGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestOTLPWrite(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus3(t, "the OTLP receiver promgate enforces is Prometheus 3.16's")
	requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n", "--web.enable-otlp-receiver")
	alice := remoteUser{name: "alice", selectors: []string{`{job="shop/cart-a"}`}}
	bob := remoteUser{name: "bob", selectors: []string{`{job="shop/cart-b"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice, bob)
	cartA := otlpService{"shop", "cart-a", "a-1"}

	t.Run("SDK exporter, protobuf", func(t *testing.T) {
		if err := otlpExport(t, gate.url, alice, cartA, "plain", false); err != nil {
			t.Fatalf("alice's export: %v", err)
		}
		got := rwInstantQuery(t, upstream.url, `{__name__=~"plain_.*"}`)
		want := map[string]bool{"plain_orders_placed_total": false, "plain_request_duration_seconds_count": false}
		for _, m := range got {
			if m["job"] != "shop/cart-a" || m["instance"] != "a-1" {
				t.Errorf("series upstream %v, want job shop/cart-a, instance a-1", m)
			}
			if _, ok := want[m["__name__"]]; ok {
				want[m["__name__"]] = true
			}
		}
		for name, seen := range want {
			if !seen {
				t.Errorf("%s did not arrive upstream (got %v)", name, got)
			}
		}
		// The tenant sees them through promgate; another tenant does not.
		if got := otlpGateQuery(t, gate.url, alice, `plain_orders_placed_total`); len(got) != 1 || got[0]["payment_method"] != "card" {
			t.Errorf("alice reads %v", got)
		}
		if got := otlpGateQuery(t, gate.url, alice, `target_info`); len(got) != 1 || got[0]["deployment_environment"] != "e2e" {
			t.Errorf("alice's target_info: %v", got)
		}
		if got := otlpGateQuery(t, gate.url, bob, `{__name__=~"plain_.*|target_info"}`); len(got) != 0 {
			t.Errorf("bob reads alice's series: %v", got)
		}
	})

	t.Run("SDK exporter, gzip", func(t *testing.T) {
		if err := otlpExport(t, gate.url, alice, cartA, "gz", true); err != nil {
			t.Fatalf("alice's export: %v", err)
		}
		if got := rwInstantQuery(t, upstream.url, `gz_orders_placed_total{job="shop/cart-a"}`); len(got) != 1 {
			t.Errorf("upstream holds %v", got)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		for _, gz := range []bool{false, true} {
			name := fmt.Sprintf("json_gauge_%v", gz)
			body, header := otlpJSONGauge(cartA, name, 7), []string{"Content-Type", "application/json"}
			if gz {
				body, header = otlpGzip(body), append(header, "Content-Encoding", "gzip")
			}
			if code, body := postOTLP(t, gate.url, alice, body, header...); code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			if got := otlpGateQuery(t, gate.url, alice, name); len(got) != 1 || got[0]["job"] != "shop/cart-a" {
				t.Errorf("alice reads %v", got)
			}
		}
	})

	t.Run("another tenant's service", func(t *testing.T) {
		before := otlpReceived(t, upstream.url)
		err := otlpExport(t, gate.url, bob, cartA, "stolen", false)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("bob writing as cart-a: %v, want a 403", err)
		}
		code, body := postOTLP(t, gate.url, bob, otlpJSONGauge(cartA, "stolen_json", 1), "Content-Type", "application/json")
		if code != 403 || !strings.Contains(body, `job=\"shop/cart-a\"`) {
			t.Errorf("bob's JSON: status %d: %s", code, body)
		}
		if after := otlpReceived(t, upstream.url); after != before {
			t.Errorf("the refused exports reached the receiver (%v -> %v)", before, after)
		}
		if got := rwInstantQuery(t, upstream.url, `{__name__=~"stolen.*"}`); len(got) != 0 {
			t.Errorf("refused series arrived: %v", got)
		}
		// Bob's own service passes.
		if err := otlpExport(t, gate.url, bob, otlpService{"shop", "cart-b", "b-1"}, "bobs", false); err != nil {
			t.Fatalf("bob's own export: %v", err)
		}
		if got := otlpGateQuery(t, gate.url, bob, `bobs_orders_placed_total`); len(got) != 1 {
			t.Errorf("bob reads %v", got)
		}
		if got := otlpGateQuery(t, gate.url, alice, `bobs_orders_placed_total`); len(got) != 0 {
			t.Errorf("alice reads bob's %v", got)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		good := otlpJSONGauge(cartA, "bad_input_control", 1)
		var zeros bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zeros, gzip.BestCompression)
		for range 40 {
			zw.Write(make([]byte, 1<<20))
		}
		zw.Close()
		for _, tc := range []struct {
			name    string
			body    []byte
			header  []string
			status  int
			errType string
			want    string
		}{
			{"garbage protobuf", []byte("\x0a\xff\xff\xff\x0f"), []string{"Content-Type", "application/x-protobuf"}, 400, "bad_data", "invalid OTLP"},
			{"garbage JSON", []byte(`{"resourceMetrics":[{`), []string{"Content-Type", "application/json"}, 400, "bad_data", "invalid OTLP"},
			{"JSON of the wrong shape", []byte(`{"resourceMetrics":{"a":1}}`), []string{"Content-Type", "application/json"}, 400, "bad_data", "invalid OTLP"},
			{"no Content-Type", good, nil, 415, "unsupported_media", "Content-Type"},
			{"text/plain", good, []string{"Content-Type", "text/plain"}, 415, "unsupported_media", "Content-Type"},
			{"JSON with a charset", good, []string{"Content-Type", "application/json; charset=utf-8"}, 415, "unsupported_media", "Content-Type"},
			{"snappy", good, []string{"Content-Type", "application/json", "Content-Encoding", "snappy"}, 415, "unsupported_media", "Content-Encoding"},
			{"not gzip", good, []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, 400, "bad_data", "gzip"},
			{"gzip bomb", zeros.Bytes(), []string{"Content-Type", "application/x-protobuf", "Content-Encoding", "gzip"}, 413, "too_large", "decompresses"},
			{"too large", make([]byte, 32<<20+1), []string{"Content-Type", "application/x-protobuf"}, 413, "too_large", "larger than"},
			{"another tenant's", otlpJSONGauge(otlpService{"shop", "cart-b", "x"}, "bad_input_other", 1), []string{"Content-Type", "application/json"}, 403, "forbidden", "outside the policy"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := otlpReceived(t, upstream.url)
				code, body := postOTLP(t, gate.url, alice, tc.body, tc.header...)
				if code != tc.status {
					t.Fatalf("status %d, want %d: %s", code, tc.status, body)
				}
				if !strings.Contains(body, `"errorType":"`+tc.errType+`"`) || !strings.Contains(body, tc.want) {
					t.Errorf("answer %s, want errorType %s mentioning %q", body, tc.errType, tc.want)
				}
				if after := otlpReceived(t, upstream.url); after != before {
					t.Errorf("the refused request reached the receiver (%v -> %v)", before, after)
				}
			})
		}
		// The counter moves for a request promgate forwards.
		before := otlpReceived(t, upstream.url)
		if code, body := postOTLP(t, gate.url, alice, good, "Content-Type", "application/json"); code != 200 {
			t.Fatalf("good request: status %d: %s", code, body)
		}
		if after := otlpReceived(t, upstream.url); after != before+1 {
			t.Errorf("a forwarded request should count once at the receiver: %v -> %v", before, after)
		}
	})
}

// TestOTLPWriteUTF8: an upstream keeping OTel's names as they are
// (translation_strategy: NoUTF8EscapingWithSuffixes) stores dotted names,
// and promgate decides on those names.
func TestOTLPWriteUTF8(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus3(t, "the OTLP receiver promgate enforces is Prometheus 3.16's")
	requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir,
		"global:\n  scrape_interval: 1m\notlp:\n  translation_strategy: NoUTF8EscapingWithSuffixes\n  promote_resource_attributes: [team.name]\n",
		"--web.enable-otlp-receiver")
	// alice may write only the dotted names of her team; the escaped
	// spelling of the same metric is not hers.
	alice := remoteUser{name: "alice", selectors: []string{`{"team.name"="a", __name__=~"utf8[.].*"}`, `{__name__="target_info", job="shop/cart-a"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice)

	body := otlpJSONGauge(otlpService{"shop", "cart-a", "a-1"}, "utf8.queue.depth", 5)
	withTeam := bytes.Replace(body, []byte(`"attributes":[`), []byte(`"attributes":[{"key":"team.name","value":{"stringValue":"a"}},`), 1)
	if code, b := postOTLP(t, gate.url, alice, withTeam, "Content-Type", "application/json"); code != 200 {
		t.Fatalf("status %d: %s", code, b)
	}
	if got := rwInstantQuery(t, upstream.url, `{"utf8.queue.depth", "team.name"="a"}`); len(got) != 1 {
		t.Errorf("upstream holds %v, want the dotted name and label", got)
	}
	if got := rwInstantQuery(t, upstream.url, `{__name__=~"utf8_.*"}`); len(got) != 0 {
		t.Errorf("escaped names upstream: %v", got)
	}
	if got := otlpGateQuery(t, gate.url, alice, `{"utf8.queue.depth"}`); len(got) != 1 || got[0]["team.name"] != "a" {
		t.Errorf("alice reads %v", got)
	}
	// The same export under an escaping upstream would be utf8_queue_depth:
	// promgate refuses a name the policy does not allow as the upstream
	// writes it.
	other := bytes.Replace(withTeam, []byte(`utf8.queue.depth`), []byte(`utf8_queue_depth`), 1)
	if code, b := postOTLP(t, gate.url, alice, other, "Content-Type", "application/json"); code != 403 || !strings.Contains(b, "utf8_queue_depth") {
		t.Errorf("status %d: %s", code, b)
	}
	// Without the team attribute, which the upstream promotes, the series
	// is not alice's.
	if code, b := postOTLP(t, gate.url, alice, body, "Content-Type", "application/json"); code != 403 || !strings.Contains(b, "utf8.queue.depth") {
		t.Errorf("status %d: %s", code, b)
	}
}

// TestOTLPPrometheus2: promgate computes the series of Prometheus 3.16's
// translation; in front of a 2.x it refuses OTLP writes, saying why.
func TestOTLPPrometheus2(t *testing.T) {
	skipIfShort(t)
	onlyPrometheus2(t, "a Prometheus 3 upstream accepts OTLP writes")
	requirePromgate(t)
	dir := t.TempDir()
	upstream := startRemotePrometheus(t, "upstream", dir, "global:\n  scrape_interval: 1m\n")
	alice := remoteUser{name: "alice", selectors: []string{`{job="shop/cart-a"}`}}
	gate := startRemotePromgate(t, dir, upstream.url, alice)
	before := otlpReceived(t, upstream.url)
	code, body := postOTLP(t, gate.url, alice, otlpJSONGauge(otlpService{"shop", "cart-a", "a-1"}, "g", 1), "Content-Type", "application/json")
	if code != 403 || !strings.Contains(body, "Prometheus 3.16") {
		t.Errorf("status %d: %s", code, body)
	}
	if after := otlpReceived(t, upstream.url); after != before {
		t.Errorf("the request reached the upstream (%v -> %v)", before, after)
	}
}
