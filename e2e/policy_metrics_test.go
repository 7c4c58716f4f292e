package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"golang.org/x/crypto/bcrypt"
)

// scrapeFamilies reads promgate's /metrics in the format accept asks for.
func scrapeFamilies(t *testing.T, url, accept string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("decoding %s: %v", resp.Header.Get("Content-Type"), err)
		}
		out[mf.GetName()] = mf
	}
}

// sample finds the metric of a family with exactly the given labels.
func sample(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	for _, m := range mfs[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if labels[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// TestPolicyMetrics sends requests as two tenants through promgate to the
// real Prometheus, one of them refused by its policy, one without
// credentials, and reads the counts per policy from the internal
// listener's /metrics, in the text format (classic histogram buckets) and
// in protobuf (native buckets). Every metric the example rules and
// dashboard use is exported.
func TestPolicyMetrics(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	prom := startSmallPrometheus(t)
	dir := t.TempDir()
	hash := func(pw string) string { return authHash(t, pw, bcrypt.MinCost) }
	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, fmt.Sprintf(`upstreams:
  prometheus: {url: %s}
authentication:
  basic_auth_users: {alice: %s, bob: %s}
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
  - {name: team-b, subjects: ["user:bob"], selectors: ['{team="b"}']}
metrics: {per_user: true, max_users: 1}
`, prom.url, hash("alice-pw"), hash("bob-pw")))
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	gate, err := startServer(t, "promgate-metrics", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr,
			fmt.Sprintf("--web.internal-listen-address=127.0.0.1:%d", port)}
	})
	if err != nil {
		t.Fatal(err)
	}
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	basic := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}

	expectTeams(t, "alice", httpClient, gate.url, basic("alice", "alice-pw"), 200, "a")
	expectTeams(t, "alice again", httpClient, gate.url, basic("alice", "alice-pw"), 200, "a")
	expectTeams(t, "bob", httpClient, gate.url, basic("bob", "bob-pw"), 200, "b")
	expectTeams(t, "no credentials", httpClient, gate.url, nil, 401)
	req, _ := http.NewRequest(http.MethodGet, gate.url+"/api/v1/status/flags", nil)
	req.SetBasicAuth("alice", "alice-pw")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("alice's flags: %d, want 403", resp.StatusCode)
	}

	text := scrapeFamilies(t, metricsURL, "text/plain;version=0.0.4")
	proto := scrapeFamilies(t, metricsURL, string(expfmt.NewFormat(expfmt.TypeProtoDelim)))

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"promgate_policy_requests_total", map[string]string{"policy": "team-a", "code": "200"}, 2},
		{"promgate_policy_requests_total", map[string]string{"policy": "team-a", "code": "403"}, 1},
		{"promgate_policy_requests_total", map[string]string{"policy": "team-b", "code": "200"}, 1},
		{"promgate_policy_requests_total", map[string]string{"policy": "(none)", "code": "401"}, 1},
		{"promgate_policy_denials_total", map[string]string{"policy": "team-a", "reason": "forbidden"}, 1},
		{"promgate_authentication_failures_total", map[string]string{"method": "none"}, 1},
		{"promgate_authentication_blocked_total", map[string]string{}, 0},
		{"promgate_upstream_requests_total", map[string]string{"upstream": "prometheus", "code": "200"}, 3},
		{"promgate_user_requests_total", map[string]string{"user": "alice", "code": "200"}, 2},
		{"promgate_user_requests_total", map[string]string{"user": "other", "code": "200"}, 1}, // bob, past max_users
		{"promgate_config_last_reload_successful", map[string]string{}, 1},
	} {
		m := sample(text, tc.name, tc.labels)
		if m == nil {
			t.Errorf("%s%v: not exported", tc.name, tc.labels)
			continue
		}
		if got := m.GetCounter().GetValue() + m.GetGauge().GetValue(); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if m := sample(text, "promgate_rewrite_cache_misses_total", map[string]string{}); m.GetCounter().GetValue() < 1 {
		t.Errorf("rewrite cache misses: %v", m)
	}
	if m := sample(text, "promgate_policy_response_bytes_total", map[string]string{"policy": "team-b"}); m.GetCounter().GetValue() < 50 {
		t.Errorf("team-b's response bytes: %v", m)
	}

	for _, name := range []string{"promgate_policy_request_duration_seconds", "promgate_upstream_request_duration_seconds"} {
		labels := map[string]string{"policy": "team-a"}
		if strings.HasPrefix(name, "promgate_upstream") {
			labels = map[string]string{"upstream": "prometheus"}
		}
		classic := sample(text, name, labels).GetHistogram()
		if classic.GetSampleCount() != 3 || len(classic.GetBucket()) == 0 || classic.Schema != nil {
			t.Errorf("%s in text: count %d, %d buckets, schema %v", name, classic.GetSampleCount(), len(classic.GetBucket()), classic.Schema)
		}
		native := sample(proto, name, labels).GetHistogram()
		if native.GetSampleCount() != 3 || native.Schema == nil || len(native.GetPositiveSpan()) == 0 || len(native.GetPositiveDelta()) == 0 {
			t.Errorf("%s in protobuf: count %d, schema %v, spans %v: no native buckets", name, native.GetSampleCount(), native.Schema, native.GetPositiveSpan())
		}
	}

	// A reload without team-b: its series go, team-a's counts stay.
	authWriteFile(t, file, fmt.Sprintf(`upstreams:
  prometheus: {url: %s}
authentication:
  basic_auth_users: {alice: %s}
policies:
  - {name: team-a, subjects: ["user:alice"], selectors: ['{team="a"}']}
`, prom.url, hash("alice-pw")))
	if code, body := internalGet(t, http.MethodPost, strings.TrimSuffix(metricsURL, "/metrics")+"/-/reload"); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	reloaded := scrapeFamilies(t, metricsURL, "text/plain;version=0.0.4")
	if m := sample(reloaded, "promgate_policy_requests_total", map[string]string{"policy": "team-a", "code": "200"}); m.GetCounter().GetValue() != 2 {
		t.Errorf("team-a after the reload: %v", m)
	}
	for _, name := range []string{"promgate_policy_requests_total", "promgate_policy_request_duration_seconds", "promgate_policy_response_bytes_total"} {
		if m := sample(reloaded, name, map[string]string{"policy": "team-b", "code": "200"}); m != nil {
			t.Errorf("%s: team-b's series stayed after the reload", name)
		}
		if m := sample(reloaded, name, map[string]string{"policy": "team-b"}); m != nil {
			t.Errorf("%s: team-b's series stayed after the reload", name)
		}
	}
	if m := sample(reloaded, "promgate_user_requests_total", map[string]string{"user": "alice", "code": "200"}); m != nil {
		t.Error("per-user series stayed after per_user was turned off")
	}

	for _, name := range exampleMetricNames(t) {
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && text[base].GetType() == dto.MetricType_HISTOGRAM {
				family = base
			}
		}
		if _, ok := text[family]; !ok {
			t.Errorf("the examples use %s, which promgate does not export", name)
		}
	}
}
