package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promgate/promgate/internal/apierror"
)

// TestSlowJWKS runs the bearer path against an identity provider that
// answers its JWKS slowly: no request waits for it longer than the bound,
// the fetch goes on in the background and serves later requests, fetches
// stay rate-limited, and tokens naming unknown keys count as failed logins.
func TestSlowJWKS(t *testing.T) {
	if JWKSWait > 2*time.Second {
		t.Errorf("JWKSWait is %s, documented as at most 2s", JWKSWait)
	}
	var (
		fetches atomic.Int64
		delay   atomic.Int64
	)
	delay.Store(int64(time.Second))
	k1 := jwtSigner()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(time.Duration(delay.Load()))
		_, _ = w.Write(jwksOf("k1", k1))
	}))
	defer srv.Close()

	rk := NewRemoteKeys(srv.URL, srv.Client(), time.Hour, nil)
	rk.wait = 100 * time.Millisecond // the test's bound; the provider takes 1s
	rk.minInterval = time.Hour       // only the first fetch and one more are allowed
	a := New(Options{
		JWT:    jwtOptions(rk, func() time.Time { return jwtNow }),
		Limits: Limits{MaxFailures: 3, Window: time.Minute},
	})
	do := func(remote, tok string) (time.Duration, int) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		_, err := a.Authenticate(r)
		took := time.Since(start)
		if err == nil {
			return took, 200
		}
		var ae *apierror.Error
		if !errors.As(err, &ae) {
			t.Fatalf("not an API error: %v", err)
		}
		return took, ae.Status()
	}
	good := es256(t, "k1", k1, jwtClaims())

	// First use: the provider is slower than the bound. The request is
	// answered 503 in time and does not count as a failure.
	took, status := do("10.0.0.1:1", good)
	if status != http.StatusServiceUnavailable || took > time.Second/2 {
		t.Fatalf("first use: %d after %s, want 503 within the bound", status, took)
	}
	// The fetch finishes in the background; then the token verifies
	// without another fetch.
	waitFor(t, func() bool { return !rk.fetching() && rk.state.Load() != nil })
	if _, status := do("10.0.0.1:1", good); status != 200 {
		t.Fatalf("after the background fetch: %d", status)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// Unknown kids: one refetch (allowed once the interval passed), which
	// the requests do not wait out, then rate-limited; each counts as a
	// failure, and the address is refused after the limit.
	rk.mu.Lock()
	rk.lastAttempt = time.Time{}
	rk.mu.Unlock()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := es256(t, "k9", other, jwtClaims())
	for i := 0; i < 3; i++ {
		took, status := do("10.0.0.2:1", forged)
		if status != http.StatusUnauthorized || took > time.Second/2 {
			t.Fatalf("unknown kid #%d: %d after %s, want 401 within the bound", i, status, took)
		}
	}
	if _, status := do("10.0.0.2:1", good); status != http.StatusTooManyRequests {
		t.Errorf("after 3 unknown kids the address got %d, want 429", status)
	}
	if _, status := do("10.0.0.3:1", good); status != 200 {
		t.Errorf("another address: %d", status)
	}
	waitFor(t, func() bool { return !rk.fetching() })
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2 (rate-limited)", n)
	}
}
