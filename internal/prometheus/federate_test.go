package prometheus

import (
	"net/http/httptest"
	"slices"
	"testing"
)

// Federate passes the client's Accept header upstream, so that Prometheus
// negotiates the format (the protobuf ones carry native histograms) over
// the narrowed match[]; without match[], promgate answers the empty
// exposition in the format Prometheus would.
func TestFederateFormats(t *testing.T) {
	const (
		delimited = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
		text      = "text/plain; version=0.0.4; charset=utf-8"
	)
	for _, tc := range []struct {
		accept, want string
	}{
		{"", text},
		{"text/plain", text},
		{"application/openmetrics-text; version=1.0.0", text},
		{delimited, "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"},
		{delimited + ";q=0.7,text/plain;version=0.0.4;q=0.3", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"},
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text; escaping=underscores"},
		{delimited + ";escaping=allow-utf-8", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=allow-utf-8"},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			up := &recorder{}
			api := New(up, Options{})
			req := httptest.NewRequest("GET", "/federate", nil)
			req.Header.Set("Accept", tc.accept)
			rec := httptest.NewRecorder()
			api.Handle(rec, req, "/federate", enforcer(t, `{team="a"}`))
			if rec.Code != 200 || rec.Body.Len() != 0 || len(up.got) != 0 {
				t.Fatalf("status %d, %d bytes, %d upstream requests", rec.Code, rec.Body.Len(), len(up.got))
			}
			if ct := rec.Header().Get("Content-Type"); ct != tc.want {
				t.Errorf("Content-Type %q, want %q", ct, tc.want)
			}

			req = httptest.NewRequest("GET", "/federate?match[]=up", nil)
			req.Header.Set("Accept", tc.accept)
			api.Handle(httptest.NewRecorder(), req, "/federate", enforcer(t, `{team="a"}`))
			if len(up.got) != 1 {
				t.Fatalf("%d upstream requests", len(up.got))
			}
			if got := up.got[0].Header.Get("Accept"); got != tc.accept {
				t.Errorf("Accept upstream %q, want %q", got, tc.accept)
			}
			if m := up.params[0]["match[]"]; !slices.Equal(m, []string{`{__name__="up", team="a"}`}) {
				t.Errorf("match[] upstream %q", m)
			}
		})
	}
}
