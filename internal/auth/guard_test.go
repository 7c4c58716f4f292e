package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
)

// step is one login attempt against a Guard: from src as user, whether it
// is checked (or refused with 429), and whether it then fails.
type step struct {
	after   time.Duration // clock advance before the step
	src     string
	user    string
	blocked bool // want a refusal by check
	retry   time.Duration
	fails   bool // record a failure (when not blocked)
}

func TestGuard(t *testing.T) {
	l := Limits{MaxFailures: 3, Window: time.Minute}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"an address is blocked after the limit, until its oldest failure leaves the window", []step{
			{src: "10.0.0.1", user: "a", fails: true},
			{after: 10 * time.Second, src: "10.0.0.1", user: "b", fails: true},
			{after: 10 * time.Second, src: "10.0.0.1", user: "c", fails: true},
			{src: "10.0.0.1", user: "d", blocked: true, retry: 40 * time.Second},
			{src: "10.0.0.1", user: "", blocked: true, retry: 40 * time.Second},
			{src: "10.0.0.2", user: "d"},
			{after: 40 * time.Second, src: "10.0.0.1", user: "d"},
		}},
		{"a user at the limit is refused only from addresses that failed for it", []step{
			{src: "10.0.0.1", user: "alice", fails: true},
			{src: "10.0.0.2", user: "alice", fails: true},
			{src: "10.0.0.3", user: "alice", fails: true},
			{src: "10.0.0.1", user: "alice", blocked: true, retry: time.Minute},
			{src: "10.0.0.4", user: "alice"},              // the real alice, elsewhere
			{src: "10.0.0.5", user: "alice", fails: true}, // one more guess...
			{src: "10.0.0.5", user: "alice", blocked: true, retry: time.Minute},
			{src: "10.0.0.1", user: "bob"}, // the address itself is below the limit
		}},
		{"failures from different addresses for different users block nobody", []step{
			{src: "10.0.0.1", user: "a", fails: true},
			{src: "10.0.0.2", user: "b", fails: true},
			{src: "10.0.0.3", user: "c", fails: true},
			{src: "10.0.0.1", user: "a"},
		}},
		{"an IPv6 /64 is one source", []step{
			{src: "[2001:db8::1]:1", user: "a", fails: true},
			{src: "[2001:db8::2]:1", user: "b", fails: true},
			{src: "[2001:db8::ffff:3]:1", user: "c", fails: true},
			{src: "[2001:db8::4]:1", user: "d", blocked: true, retry: time.Minute},
			{src: "[2001:db8:0:1::4]:1", user: "d"},
		}},
		{"IPv4-mapped addresses are IPv4", []step{
			{src: "[::ffff:10.0.0.1]:1", user: "a", fails: true},
			{src: "10.0.0.1:2", user: "b", fails: true},
			{src: "[::ffff:10.0.0.1]:3", user: "c", fails: true},
			{src: "10.0.0.1:4", user: "d", blocked: true, retry: time.Minute},
		}},
		{"the window slides", []step{
			{src: "10.0.0.1", fails: true},
			{after: 30 * time.Second, src: "10.0.0.1", fails: true},
			{after: 31 * time.Second, src: "10.0.0.1", fails: true}, // the first has left
			{src: "10.0.0.1", fails: true},
			{src: "10.0.0.1", blocked: true, retry: 29 * time.Second},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGuard()
			now := time.Unix(1_700_000_000, 0)
			g.now = func() time.Time { return now }
			for i, s := range tc.steps {
				now = now.Add(s.after)
				src := s.src
				if !strings.Contains(src, ":") {
					src += ":1234"
				}
				key := sourceOf(src)
				err := g.check(l, key, s.user)
				var rl *RateLimitedError
				switch {
				case s.blocked && !errors.As(err, &rl):
					t.Fatalf("step %d: not blocked (%v)", i, err)
				case s.blocked && rl.RetryAfter != s.retry:
					t.Errorf("step %d: retry after %s, want %s", i, rl.RetryAfter, s.retry)
				case !s.blocked && err != nil:
					t.Fatalf("step %d: blocked: %v", i, err)
				}
				if !s.blocked && s.fails {
					g.fail(l, key, s.user)
				}
			}
		})
	}
}

func TestGuardDisabled(t *testing.T) {
	g := NewGuard()
	off := Limits{MaxFailures: 0, Window: time.Minute}
	for i := 0; i < 100; i++ {
		g.fail(off, "10.0.0.1", "a")
	}
	if err := g.check(off, "10.0.0.1", "a"); err != nil || g.Len() != 0 {
		t.Errorf("disabled guard: %v, %d entries", err, g.Len())
	}
}

func TestGuardIsBounded(t *testing.T) {
	g := NewGuard()
	l := Limits{MaxFailures: 5, Window: time.Hour}
	for i := 0; i < maxGuardEntries+10; i++ {
		g.fail(l, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "")
	}
	if n := g.Len(); n > maxGuardEntries {
		t.Errorf("%d entries, bound %d", n, maxGuardEntries)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		err  error
		secs int
		ok   bool
	}{
		{&RateLimitedError{err: apierror.New(apierror.TooManyRequests, "x"), RetryAfter: 1500 * time.Millisecond}, 2, true},
		{&RateLimitedError{err: apierror.New(apierror.TooManyRequests, "x"), RetryAfter: 0}, 1, true},
		{fmt.Errorf("wrapped: %w", &RateLimitedError{err: apierror.New(apierror.TooManyRequests, "x"), RetryAfter: time.Minute}), 60, true},
		{apierror.New(apierror.Unauthorized, "x"), 0, false},
	} {
		secs, ok := RetryAfter(tc.err)
		if secs != tc.secs || ok != tc.ok {
			t.Errorf("RetryAfter(%v) = %d, %v", tc.err, secs, ok)
		}
	}
	// The error is a 429 for apierror.Write.
	var ae *apierror.Error
	err := error(&RateLimitedError{err: apierror.New(apierror.TooManyRequests, "x")})
	if !errors.As(err, &ae) || ae.Status() != http.StatusTooManyRequests {
		t.Errorf("not a 429: %v", err)
	}
}

// TestAuthenticateBruteForce runs the Guard through Authenticate: what
// counts as a failure, 429 before bcrypt, and the other address.
func TestAuthenticateBruteForce(t *testing.T) {
	a := New(Options{
		BasicAuthUsers: map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.MinCost)},
		HeaderName:     "X-User",
		Tokens:         map[[32]byte]string{{1}: "robot"},
		Limits:         Limits{MaxFailures: 2, Window: time.Minute},
	})
	do := func(remote string, prepare func(*http.Request)) error {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		prepare(r)
		_, err := a.Authenticate(r)
		return err
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	status := func(err error) int {
		var ae *apierror.Error
		if err == nil {
			return 200
		}
		if errors.As(err, &ae) {
			return ae.Status()
		}
		return 500
	}

	// Presenting nothing, malformed credentials and an identity header
	// from an untrusted source are not guesses.
	for i := 0; i < 5; i++ {
		_ = do("10.0.0.1:1", func(*http.Request) {})
		_ = do("10.0.0.1:1", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!") })
		_ = do("10.0.0.1:1", func(r *http.Request) { r.Header.Set("X-User", "root") })
	}
	if s := status(do("10.0.0.1:1", basic("alice", "alice-pw"))); s != 200 {
		t.Fatalf("status %d before any guess", s)
	}
	// Two unknown bearer tokens use up the address.
	for i := 0; i < 2; i++ {
		if s := status(do("10.0.0.1:1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") })); s != 401 {
			t.Fatalf("token guess %d: %d", i, s)
		}
	}
	runs := a.bcryptRuns.Load()
	if s := status(do("10.0.0.1:1", basic("alice", "alice-pw"))); s != 429 {
		t.Fatalf("right password from the blocked address: %d", s)
	}
	if a.bcryptRuns.Load() != runs {
		t.Error("bcrypt ran for a blocked address")
	}
	if s := status(do("10.0.0.2:1", basic("alice", "alice-pw"))); s != 200 {
		t.Fatalf("right password from another address: %d", s)
	}
}
