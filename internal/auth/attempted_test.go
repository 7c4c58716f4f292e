package auth

import (
	"net/http/httptest"
	"testing"
)

func TestAttempted(t *testing.T) {
	withHeader := newTestAuthenticator(t)
	basicOnly := New(Options{BasicAuthUsers: map[string]string{"alice": mustHash(t, "pw", 4)}})
	for _, tc := range []struct {
		name    string
		a       *Authenticator
		headers map[string]string
		want    string
	}{
		{"nothing", withHeader, nil, "none"},
		{"basic", withHeader, map[string]string{"Authorization": "Basic YWxpY2U6eA=="}, MethodBasic},
		{"trusted header first", withHeader, map[string]string{header: "alice", "Authorization": "Basic YWxpY2U6eA=="}, MethodHeader},
		{"bearer without token methods", withHeader, map[string]string{"Authorization": "Bearer x"}, "malformed"},
		{"unknown scheme", basicOnly, map[string]string{"Authorization": "Digest x"}, "malformed"},
		{"header not configured", basicOnly, map[string]string{header: "alice"}, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := tc.a.Attempted(r); got != tc.want {
				t.Errorf("Attempted = %q, want %q", got, tc.want)
			}
		})
	}
}
