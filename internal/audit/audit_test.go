package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSafeID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"", false},
		{"abc-123_X.y:z", true},
		{strings.Repeat("a", MaxIDLength), true},
		{strings.Repeat("a", MaxIDLength+1), false},
		{"a b", false},
		{"a\nb", false},
		{`a"b`, false},
		{"é", false},
		{"a/b", false},
	} {
		if got := SafeID(tc.id); got != tc.want {
			t.Errorf("SafeID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestNewRecordID(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		keep         bool
	}{
		{"none", "", false},
		{"safe", "trace-0af7651916cd43dd", true},
		{"unsafe", "x\" injected", false},
		{"too long", strings.Repeat("z", 65), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api/v1/query", nil)
			if tc.header != "" {
				r.Header.Set(RequestIDHeader, tc.header)
			}
			rec := NewRecord(r, time.Now())
			if tc.keep != (rec.ID() == tc.header) {
				t.Fatalf("id %q, client sent %q, keep=%v", rec.ID(), tc.header, tc.keep)
			}
			if !tc.keep && (len(rec.ID()) != 32 || !SafeID(rec.ID())) {
				t.Fatalf("generated id %q is not 32 safe characters", rec.ID())
			}
		})
	}
}

func TestNilRecord(t *testing.T) {
	rec := From(context.Background())
	if rec != nil {
		t.Fatal("a context without a record gave one")
	}
	// Audit off: every stage's call is a no-op.
	rec.SetIdentity("u", nil, "basic")
	rec.SetPolicy([]string{"p"}, false)
	rec.Deny("x")
	rec.SetClient(url.Values{"query": {"up"}})
	rec.SetSent(url.Values{"query": {"up"}})
	rec.SetSentFilter([]string{"a=b"})
	rec.SetUpstreamStatus(200)
	if rec.ID() != "" {
		t.Fatal("nil record has an id")
	}
}

func logLine(t *testing.T, deniedOnly bool, fill func(*Record), a Answer) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	lg := NewLoggerTo(&buf, deniedOnly)
	r := httptest.NewRequest("GET", "/api/v1/query", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	rec := NewRecord(r, time.Now())
	ctx := NewContext(context.Background(), rec)
	fill(From(ctx))
	lg.Log(rec, a, time.Now())
	if buf.Len() == 0 {
		return nil
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.String())
	}
	return m
}

func TestLoggerDecisions(t *testing.T) {
	restricted := func(r *Record) {
		r.SetIdentity("alice", []string{"team-a"}, "basic")
		r.SetPolicy([]string{"team-a"}, false)
	}
	for _, tc := range []struct {
		name       string
		deniedOnly bool
		fill       func(*Record)
		answer     Answer
		want       map[string]any // nil: no line
		wantReason string
	}{
		{
			name: "allowed restricted",
			fill: func(r *Record) {
				restricted(r)
				r.SetClient(url.Values{"query": {"up"}})
				r.SetSent(url.Values{"query": {`up{team="a"}`}})
				r.SetUpstreamStatus(200)
			},
			answer: Answer{Status: 200, Bytes: 42},
			want: map[string]any{"decision": "allowed", "status": 200.0, "upstream_status": 200.0, "bytes_out": 42.0,
				"query": []any{"up"}, "sent_query": []any{`up{team="a"}`}, "policies": []any{"team-a"}, "allow_all": false,
				"remote": "192.0.2.1:1234", "method": "GET", "path": "/api/v1/query",
				"identity": map[string]any{"user": "alice", "groups": []any{"team-a"}, "method": "basic"}},
			wantReason: "restricted by policy team-a",
		},
		{
			name:       "allowed but denied only",
			deniedOnly: true,
			fill:       func(r *Record) { restricted(r); r.SetUpstreamStatus(200) },
			answer:     Answer{Status: 200},
		},
		{
			name:       "upstream error is still allowed",
			fill:       func(r *Record) { restricted(r); r.SetUpstreamStatus(400) },
			answer:     Answer{Status: 400, ErrorBody: []byte(`{"status":"error","error":"parse error"}`)},
			want:       map[string]any{"decision": "allowed", "upstream_status": 400.0, "status": 400.0},
			wantReason: "forwarded limited",
		},
		{
			name:       "authentication failure",
			deniedOnly: true,
			fill:       func(r *Record) { r.Deny("authentication failed: wrong password") },
			answer:     Answer{Status: 401, ErrorBody: []byte(`{"status":"error","error":"unauthorized"}`)},
			want:       map[string]any{"decision": "denied", "status": 401.0},
			wantReason: "authentication failed: wrong password",
		},
		{
			name:       "refused path, reason from the envelope",
			fill:       restricted,
			answer:     Answer{Status: 403, ErrorBody: []byte(`{"status":"error","errorType":"forbidden","error":"/api/v1/admin/tsdb/snapshot is not available to restricted users"}`)},
			want:       map[string]any{"decision": "denied", "status": 403.0},
			wantReason: "/api/v1/admin/tsdb/snapshot is not available to restricted users",
		},
		{
			name:       "Alertmanager string error",
			fill:       restricted,
			answer:     Answer{Status: 400, ErrorBody: []byte(`"bad matcher format: =x"`)},
			want:       map[string]any{"decision": "denied"},
			wantReason: "bad matcher format: =x",
		},
		{
			name:       "Alertmanager schema error",
			fill:       restricted,
			answer:     Answer{Status: 422, ErrorBody: []byte(`{"code":602,"message":"filter in query is required"}`)},
			want:       map[string]any{"decision": "denied"},
			wantReason: "filter in query is required",
		},
		{
			name:       "upstream unreachable",
			fill:       restricted,
			answer:     Answer{Status: 502, ErrorBody: []byte(`{"status":"error","error":"upstream: connection refused"}`)},
			want:       map[string]any{"decision": "error", "status": 502.0},
			wantReason: "upstream: connection refused",
		},
		{
			name:       "empty error body",
			fill:       restricted,
			answer:     Answer{Status: 405},
			want:       map[string]any{"decision": "denied"},
			wantReason: "Method Not Allowed",
		},
		{
			name:       "public endpoint",
			fill:       func(*Record) {},
			answer:     Answer{Status: 200},
			want:       map[string]any{"decision": "allowed"},
			wantReason: "public endpoint",
		},
		{
			name:       "unrestricted",
			fill:       func(r *Record) { r.SetPolicy([]string{"admins"}, true); r.SetUpstreamStatus(200) },
			answer:     Answer{Status: 200},
			want:       map[string]any{"decision": "allowed", "allow_all": true},
			wantReason: "unrestricted by policy admins",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := logLine(t, tc.deniedOnly, tc.fill, tc.answer)
			if tc.want == nil {
				if m != nil {
					t.Fatalf("logged %v, want nothing", m)
				}
				return
			}
			if m == nil {
				t.Fatal("nothing logged")
			}
			for k, v := range tc.want {
				got, _ := json.Marshal(m[k])
				want, _ := json.Marshal(v)
				if !bytes.Equal(got, want) {
					t.Errorf("%s = %s, want %s", k, got, want)
				}
			}
			if r, _ := m["reason"].(string); !strings.Contains(r, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", r, tc.wantReason)
			}
			for _, k := range []string{"time", "request_id", "duration_seconds", "msg"} {
				if _, ok := m[k]; !ok {
					t.Errorf("no %s", k)
				}
			}
		})
	}
}

func TestSentAccumulates(t *testing.T) {
	m := logLine(t, false, func(r *Record) {
		r.SetSent(url.Values{"query": {"a"}})
		r.SetSent(url.Values{"query": {"b"}, "match[]": {"c"}})
		r.SetSentFilter([]string{`team="a"`})
		r.SetUpstreamStatus(200)
	}, Answer{Status: 200})
	got, _ := json.Marshal([]any{m["sent_query"], m["sent_match"], m["sent_filter"]})
	if want := `[["a","b"],["c"],["team=\"a\""]]`; string(got) != want {
		t.Fatalf("sent %s, want %s", got, want)
	}
}

func TestFilesReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	files := NewFiles()
	lg, err := NewLogger(path, RequestsAll, files)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := files.Open(path); again == nil || len(files.files) != 1 {
		t.Fatal("a second Open of the same path did not share the file")
	}
	log := func() {
		rec := NewRecord(httptest.NewRequest("GET", "/-/healthy", nil), time.Now())
		lg.Log(rec, Answer{Status: 200}, time.Now())
	}
	log()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	log() // still to the moved file, as logrotate expects until told
	if err := files.Reopen(); err != nil {
		t.Fatal(err)
	}
	log()
	for p, want := range map[string]int{path + ".1": 2, path: 1} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n != want {
			t.Errorf("%s has %d lines, want %d", p, n, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if _, err := NewLogger(filepath.Join(dir, "missing", "x.log"), RequestsAll, files); err == nil {
		t.Error("a file in a missing directory was opened")
	}
}
