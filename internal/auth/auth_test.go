package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

const header = "X-Prometheus-Injectable"

func mustHash(t testing.TB, password string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newTestAuthenticator(t testing.TB) *Authenticator {
	t.Helper()
	return New(Options{
		BasicAuthUsers: map[string]string{
			"alice": mustHash(t, "alice-pw", bcrypt.MinCost),
			"bob":   mustHash(t, "bob-pw", bcrypt.MinCost),
		},
		HeaderName: strings.ToLower(header), // canonicalised by New
		TrustedSources: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.1/32"),
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("::1/128"),
		},
	})
}

type request struct {
	remote  string
	headers map[string][]string
	user    string // basic auth, when pass or user is set
	pass    string
}

func (rq request) build() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
	if rq.remote != "" {
		r.RemoteAddr = rq.remote
	}
	if rq.user != "" || rq.pass != "" {
		r.SetBasicAuth(rq.user, rq.pass)
	}
	for k, vs := range rq.headers {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	return r
}

func TestAuthenticate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     request
		want    identity.Identity
		errType apierror.Type // "" = success
		errMsg  string
		bcrypt  uint64 // bcrypt runs the request must cost
	}{
		{
			name: "trusted source with header",
			req:  request{remote: "127.0.0.1:40000", headers: map[string][]string{header: {"carol"}}},
			want: identity.Identity{User: "carol", Method: MethodHeader},
		},
		{
			name: "trusted IPv6 source",
			req:  request{remote: "[::1]:40000", headers: map[string][]string{header: {"carol"}}},
			want: identity.Identity{User: "carol", Method: MethodHeader},
		},
		{
			name: "trusted IPv4-mapped source",
			req:  request{remote: "[::ffff:10.1.2.3]:40000", headers: map[string][]string{header: {"dave"}}},
			want: identity.Identity{User: "dave", Method: MethodHeader},
		},
		{
			name: "header name in another case",
			req:  request{remote: "127.0.0.1:1", headers: map[string][]string{"x-PROMETHEUS-injectable": {"carol"}}},
			want: identity.Identity{User: "carol", Method: MethodHeader},
		},
		{
			name: "header wins over basic auth from a trusted source",
			req:  request{remote: "127.0.0.1:1", headers: map[string][]string{header: {"carol"}}, user: "alice", pass: "alice-pw"},
			want: identity.Identity{User: "carol", Method: MethodHeader},
		},
		{
			name:    "header from untrusted source",
			req:     request{remote: "192.0.2.1:40000", headers: map[string][]string{header: {"carol"}}},
			errType: apierror.Forbidden,
			errMsg:  "identity header X-Prometheus-Injectable from untrusted source",
		},
		{
			name:    "header from untrusted source never falls through to valid basic auth",
			req:     request{remote: "192.0.2.1:40000", headers: map[string][]string{header: {"carol"}}, user: "alice", pass: "alice-pw"},
			errType: apierror.Forbidden,
			errMsg:  "untrusted source",
		},
		{
			name:    "empty header from untrusted source",
			req:     request{remote: "192.0.2.1:40000", headers: map[string][]string{header: {""}}},
			errType: apierror.Forbidden,
		},
		{
			name:    "unparsable remote address is untrusted",
			req:     request{remote: "@", headers: map[string][]string{header: {"carol"}}},
			errType: apierror.Forbidden,
		},
		{
			name:    "empty header from trusted source",
			req:     request{remote: "127.0.0.1:40000", headers: map[string][]string{header: {""}}},
			errType: apierror.Unauthorized,
			errMsg:  "identity header X-Prometheus-Injectable is empty",
		},
		{
			name:    "header given twice",
			req:     request{remote: "127.0.0.1:40000", headers: map[string][]string{header: {"carol", "root"}}},
			errType: apierror.Unauthorized,
			errMsg:  "more than once",
		},
		{
			name:    "nothing presented",
			req:     request{remote: "127.0.0.1:40000"},
			errType: apierror.Unauthorized,
			errMsg:  "authentication required",
		},
		{
			name:   "good password",
			req:    request{user: "alice", pass: "alice-pw"},
			want:   identity.Identity{User: "alice", Method: MethodBasic},
			bcrypt: 1,
		},
		{
			name:    "wrong password",
			req:     request{user: "alice", pass: "bob-pw"},
			errType: apierror.Unauthorized,
			errMsg:  "invalid user name or password",
			bcrypt:  1,
		},
		{
			name:    "empty password",
			req:     request{user: "alice"},
			errType: apierror.Unauthorized,
			errMsg:  "invalid user name or password",
			bcrypt:  1,
		},
		{
			name:    "unknown user costs a bcrypt run too",
			req:     request{user: "mallory", pass: "alice-pw"},
			errType: apierror.Unauthorized,
			errMsg:  "invalid user name or password",
			bcrypt:  1,
		},
		{
			name:    "malformed Authorization",
			req:     request{headers: map[string][]string{"Authorization": {"Basic !!!not-base64"}}},
			errType: apierror.Unauthorized,
			errMsg:  "malformed Authorization header",
		},
		{
			name:    "Authorization without colon",
			req:     request{headers: map[string][]string{"Authorization": {"Basic YWxpY2U="}}}, // "alice"
			errType: apierror.Unauthorized,
			errMsg:  "malformed Authorization header",
		},
		{
			name:    "other scheme",
			req:     request{headers: map[string][]string{"Authorization": {"Bearer abc"}}},
			errType: apierror.Unauthorized,
			errMsg:  "malformed Authorization header",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAuthenticator(t)
			got, err := a.Authenticate(tc.req.build())
			if runs := a.bcryptRuns.Load(); runs != tc.bcrypt {
				t.Errorf("%d bcrypt runs, want %d", runs, tc.bcrypt)
			}
			if tc.errType == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if got.User != tc.want.User || got.Method != tc.want.Method || len(got.Groups) != 0 {
					t.Errorf("identity = %+v, want %+v", got, tc.want)
				}
				return
			}
			var ae *apierror.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *apierror.Error", err, err)
			}
			if ae.Type != tc.errType {
				t.Errorf("error type %q, want %q (%v)", ae.Type, tc.errType, err)
			}
			if !strings.Contains(err.Error(), tc.errMsg) {
				t.Errorf("error %q lacks %q", err, tc.errMsg)
			}
			if got.User != "" || got.Method != "" || got.Groups != nil {
				t.Errorf("identity %+v returned along with an error", got)
			}
			// Neither passwords nor hashes leak into errors.
			for _, secret := range []string{"alice-pw", "bob-pw", "$2a$"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains %q", err, secret)
				}
			}
		})
	}
}

func TestAuthenticateCachesSuccessOnly(t *testing.T) {
	a := newTestAuthenticator(t)
	good := request{user: "alice", pass: "alice-pw"}
	bad := request{user: "alice", pass: "wrong"}

	for i, step := range []struct {
		req  request
		ok   bool
		runs uint64 // total bcrypt runs after the step
	}{
		{good, true, 1}, // cold: bcrypt
		{good, true, 1}, // warm: cache hit
		{good, true, 1}, // still warm
		{bad, false, 2}, // failures always run bcrypt...
		{bad, false, 3}, // ...and are never cached
		{request{user: "bob", pass: "alice-pw"}, false, 4}, // alice's password is not bob's
		{good, true, 4},
	} {
		_, err := a.Authenticate(step.req.build())
		if (err == nil) != step.ok {
			t.Fatalf("step %d: err = %v, want ok=%v", i, err, step.ok)
		}
		if got := a.bcryptRuns.Load(); got != step.runs {
			t.Fatalf("step %d: %d bcrypt runs, want %d", i, got, step.runs)
		}
	}
}

// TestCacheKeyFromHashDoesNotAuthenticate: knowing the stored hash (for
// example from a leaked configuration) must not help to hit the cache.
func TestCacheKeyFromHashDoesNotAuthenticate(t *testing.T) {
	a := newTestAuthenticator(t)
	stored := string(a.users["alice"])
	if _, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build()); err != nil {
		t.Fatal(err)
	}

	// The hash used as the password misses the cache and fails bcrypt.
	if a.cacheHas(a.cacheKey("alice", stored, []byte(stored))) {
		t.Fatal("a key built from the hash instead of the password is in the cache")
	}
	before := a.bcryptRuns.Load()
	if id, err := a.Authenticate(request{user: "alice", pass: stored}.build()); err == nil {
		t.Fatalf("the hash authenticated as the password: %+v", id)
	}
	if a.bcryptRuns.Load() != before+1 {
		t.Error("the hash as password did not go through bcrypt")
	}

	// Keys depend on the per-process MAC key: another authenticator with
	// the same users computes different keys for the same triple.
	other := New(Options{BasicAuthUsers: map[string]string{"alice": stored}})
	if other.cacheKey("alice", "alice-pw", []byte(stored)) == a.cacheKey("alice", "alice-pw", []byte(stored)) {
		t.Error("cache keys do not depend on the per-process key")
	}
}

func (a *Authenticator) cacheHas(k cacheKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.cache[k]
	return ok
}

func TestCacheKeyFraming(t *testing.T) {
	a := New(Options{})
	h := []byte("hash")
	for _, pair := range [][2][3]string{
		{{"ab", "c", "hash"}, {"a", "bc", "hash"}},
		{{"a", "bchash", ""}, {"a", "bc", "hash"}},
		{{"", "abc", "hash"}, {"abc", "", "hash"}},
	} {
		k1 := a.cacheKey(pair[0][0], pair[0][1], []byte(pair[0][2]))
		k2 := a.cacheKey(pair[1][0], pair[1][1], []byte(pair[1][2]))
		if k1 == k2 {
			t.Errorf("%q and %q frame to the same key", pair[0], pair[1])
		}
	}
	if a.cacheKey("u", "p", h) != a.cacheKey("u", "p", h) {
		t.Error("cache key is not deterministic")
	}
}

// TestChangedHashMissesCache: a reload that changes a user's hash must not
// let the old password in through the cache.
func TestChangedHashMissesCache(t *testing.T) {
	a := newTestAuthenticator(t)
	if _, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build()); err != nil {
		t.Fatal(err)
	}
	// Simulate a new hash for alice in the same authenticator.
	a.users["alice"] = []byte(mustHash(t, "new-pw", bcrypt.MinCost))
	if _, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build()); err == nil {
		t.Fatal("old password accepted after the hash changed")
	}
	if _, err := a.Authenticate(request{user: "alice", pass: "new-pw"}.build()); err != nil {
		t.Fatal(err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	a := newTestAuthenticator(t)
	a.mu.Lock()
	for i := 0; i < maxCacheEntries; i++ {
		var k cacheKey
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		k[31] = 0xff // distinct from any real key with overwhelming probability
		a.cache[k] = struct{}{}
	}
	a.mu.Unlock()
	if _, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build()); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	n := len(a.cache)
	a.mu.Unlock()
	if n != maxCacheEntries {
		t.Errorf("cache holds %d entries, want %d", n, maxCacheEntries)
	}
	if !a.cacheHas(a.cacheKey("alice", "alice-pw", a.users["alice"])) {
		t.Error("the new success was not cached")
	}
}

func TestIdentityHeaders(t *testing.T) {
	if got := newTestAuthenticator(t).IdentityHeaders(); strings.Join(got, ",") != "Authorization,"+header {
		t.Errorf("IdentityHeaders = %v", got)
	}
	if got := New(Options{}).IdentityHeaders(); strings.Join(got, ",") != "Authorization" {
		t.Errorf("IdentityHeaders without header = %v", got)
	}
}

// TestHeaderOnly: with no basic users an Authorization header is not
// credentials promgate checks; the request presented nothing.
func TestHeaderOnly(t *testing.T) {
	a := New(Options{HeaderName: header, TrustedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	_, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build())
	var ae *apierror.Error
	if !errors.As(err, &ae) || ae.Type != apierror.Unauthorized || !strings.Contains(err.Error(), "authentication required") {
		t.Errorf("err = %v", err)
	}
	if a.bcryptRuns.Load() != 0 {
		t.Error("bcrypt ran without basic users")
	}
}

// TestBasicOnlyIgnoresHeader: without a configured header, a client's
// X-Prometheus-Injectable means nothing.
func TestBasicOnlyIgnoresHeader(t *testing.T) {
	a := New(Options{BasicAuthUsers: map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.MinCost)}})
	id, err := a.Authenticate(request{remote: "127.0.0.1:1", headers: map[string][]string{header: {"root"}}, user: "alice", pass: "alice-pw"}.build())
	if err != nil || id.User != "alice" {
		t.Errorf("got %+v, %v", id, err)
	}
}

// TestDefaultCost runs the real cost once: the dummy hash follows the
// configured cost, and a default-cost password verifies and is cached.
func TestDefaultCost(t *testing.T) {
	a := New(Options{BasicAuthUsers: map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.DefaultCost)}})
	if c, err := bcrypt.Cost(a.dummyHash); err != nil || c != bcrypt.DefaultCost {
		t.Errorf("dummy hash cost = %d, %v; want %d", c, err, bcrypt.DefaultCost)
	}
	for i := 0; i < 2; i++ {
		if _, err := a.Authenticate(request{user: "alice", pass: "alice-pw"}.build()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Authenticate(request{user: "nobody", pass: "x"}.build()); err == nil {
		t.Fatal("unknown user accepted")
	}
	if runs := a.bcryptRuns.Load(); runs != 2 {
		t.Errorf("%d bcrypt runs, want 2 (one cold success, one unknown user)", runs)
	}
}

func TestDummyHashCost(t *testing.T) {
	a := New(Options{BasicAuthUsers: map[string]string{
		"a": mustHash(t, "x", bcrypt.MinCost),
		"b": mustHash(t, "x", bcrypt.MinCost+1),
		"c": "not a hash",
	}})
	if c, _ := bcrypt.Cost(a.dummyHash); c != bcrypt.MinCost+1 {
		t.Errorf("dummy cost %d, want the maximum configured %d", c, bcrypt.MinCost+1)
	}
	if _, err := a.Authenticate(request{user: "c", pass: "not a hash"}.build()); err == nil {
		t.Error("a user with an invalid hash authenticated")
	}
}

func TestConcurrent(t *testing.T) {
	a := newTestAuthenticator(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				rq := request{user: "alice", pass: "alice-pw"}
				if j%2 == 1 {
					rq = request{user: "bob", pass: "bob-pw"}
				}
				if _, err := a.Authenticate(rq.build()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := a.bcryptRuns.Load(); n < 2 || n > 32 {
		t.Errorf("%d bcrypt runs for 800 requests of two users", n)
	}
}

func BenchmarkBasicAuthWarm(b *testing.B) {
	a := New(Options{BasicAuthUsers: map[string]string{"alice": mustHash(b, "alice-pw", bcrypt.DefaultCost)}})
	r := request{user: "alice", pass: "alice-pw"}.build()
	if _, err := a.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if n := a.bcryptRuns.Load(); n != 1 {
		b.Fatalf("%d bcrypt runs, want 1", n)
	}
}
