package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
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
	src := sourceOf("10.0.0.1:1")
	for i := 0; i < 100; i++ {
		g.fail(off, src, "a")
	}
	if err := g.check(off, src, "a"); err != nil || g.Len() != 0 {
		t.Errorf("disabled guard: %v, %d entries", err, g.Len())
	}
}

// TestGuardEviction pins when entries leave the Guard: emptied entries
// after the window, expired ones first at the byte bound, then arbitrary
// ones; and that a user name's length does not change an entry's cost.
func TestGuardEviction(t *testing.T) {
	l := Limits{MaxFailures: 3, Window: time.Minute}
	addr := func(i int) netip.Prefix { return sourceOf(fmt.Sprintf("10.0.%d.%d:1", i>>8&255, i&255)) }
	for _, tc := range []struct {
		name     string
		maxBytes int
		run      func(g *Guard, advance func(time.Duration))
		wantLen  int
		check    func(t *testing.T, g *Guard)
	}{
		{"an entry is deleted once its failures leave the window, even if nobody asks for it again", maxGuardBytes,
			func(g *Guard, advance func(time.Duration)) {
				g.fail(l, addr(1), "alice")
				advance(time.Minute + time.Second)
				_ = g.check(l, addr(2), "") // any later request sweeps
			}, 0, nil},
		{"an entry asked about after the window is deleted", maxGuardBytes,
			func(g *Guard, advance func(time.Duration)) {
				g.fail(l, addr(1), "")
				advance(30 * time.Second)
				g.fail(l, addr(2), "")
				advance(31 * time.Second)
				_ = g.check(l, addr(1), "")
			}, 1, nil},
		{"live entries stay", maxGuardBytes,
			func(g *Guard, advance func(time.Duration)) {
				g.fail(l, addr(1), "alice")
				advance(59 * time.Second)
				_ = g.check(l, addr(1), "alice")
			}, 3, nil},
		{"at the byte bound, entries past the window go first", 10 * (entryOverhead + failureBytes),
			func(g *Guard, advance func(time.Duration)) {
				for i := 0; i < 5; i++ {
					g.fail(l, addr(i), "")
				}
				advance(61 * time.Second)
				g.swept = g.now() // no periodic sweep: the bound must do it
				for i := 5; i < 11; i++ {
					g.fail(l, addr(i), "")
				}
			}, 6, func(t *testing.T, g *Guard) {
				for i := 5; i < 11; i++ {
					if g.entries[addrKey(addr(i))] == nil {
						t.Errorf("live entry %d evicted", i)
					}
				}
			}},
		{"at the byte bound with every entry live, arbitrary ones go down to 90%", 10 * (entryOverhead + failureBytes),
			func(g *Guard, advance func(time.Duration)) {
				for i := 0; i < 50; i++ {
					g.fail(l, addr(i), "")
				}
			}, -1, func(t *testing.T, g *Guard) {
				if g.bytes > g.maxBytes || len(g.entries) > 10 {
					t.Errorf("%d bytes in %d entries, bound %d", g.bytes, len(g.entries), g.maxBytes)
				}
			}},
		{"a user name's length does not change the cost", maxGuardBytes,
			func(g *Guard, advance func(time.Duration)) {
				g.fail(l, addr(1), strings.Repeat("x", 1<<20))
			}, 3, func(t *testing.T, g *Guard) {
				if want := 3 * (entryOverhead + failureBytes); g.bytes != want {
					t.Errorf("%d bytes, want %d", g.bytes, want)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGuard()
			g.maxBytes = tc.maxBytes
			now := time.Unix(1_700_000_000, 0)
			g.now = func() time.Time { return now }
			tc.run(g, func(d time.Duration) { now = now.Add(d) })
			if tc.wantLen >= 0 && g.Len() != tc.wantLen {
				t.Errorf("%d entries, want %d", g.Len(), tc.wantLen)
			}
			if tc.check != nil {
				tc.check(t, g)
			}
			// The byte count is the sum of what the entries hold.
			sum := 0
			for _, f := range g.entries {
				sum += entryOverhead + failureBytes*cap(f.times)
			}
			if sum != g.bytes {
				t.Errorf("byte count %d, entries hold %d", g.bytes, sum)
			}
		})
	}
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestGuardMemoryUnderHostileLogins sends what an attacker would: huge user
// names (a header allows about a megabyte) and failures from a great many
// IPv6 networks. The Guard's heap must stay bounded in bytes, and be
// released once the window has passed.
func TestGuardMemoryUnderHostileLogins(t *testing.T) {
	g := NewGuard()
	// A smaller bound than the default keeps the test quick; the estimate
	// of an entry's cost, which the bound relies on, is the same.
	g.maxBytes = 4 << 20
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := Limits{MaxFailures: 10, Window: time.Minute}
	a := New(Options{
		BasicAuthUsers: map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.MinCost)},
		Tokens:         map[[32]byte]string{{1}: "robot"},
		Guard:          g,
		Limits:         l,
	})
	attempt := func(remote string, set func(*http.Request)) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		set(r)
		if _, err := a.Authenticate(r); err == nil {
			t.Fatal("a hostile login succeeded")
		}
	}
	base := heapInUse()

	// 60 failed logins with 700 KiB names, from 60 IPv6 networks.
	name := strings.Repeat("n", 700<<10)
	for i := 0; i < 60; i++ {
		attempt(fmt.Sprintf("[2001:db8:%x::1]:1", i), func(r *http.Request) {
			r.SetBasicAuth(name[:len(name)-i]+"x", "guess")
		})
	}
	name = ""
	if grown := int64(heapInUse()) - int64(base); grown > 1<<20 {
		t.Errorf("60 logins with huge names hold %d KiB", grown>>10)
	}
	runtime.KeepAlive(a) // what is measured is what a live Authenticator holds

	// Token guesses from more IPv6 networks than the bound has room for.
	n := 2 * g.maxBytes / (entryOverhead + failureBytes)
	for i := 0; i < n; i++ {
		attempt(fmt.Sprintf("[2001:db8:%x:%x::1]:1", i>>16, i&0xffff), func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer guess")
		})
	}
	grown := int64(heapInUse()) - int64(base)
	t.Logf("%d failures from distinct networks: %d entries, %d MiB estimated, %d MiB on the heap", n, g.Len(), g.bytes>>20, grown>>20)
	if grown > int64(g.maxBytes)*5/4 {
		t.Errorf("%d failures from distinct networks hold %d MiB, bound %d MiB", n, grown>>20, g.maxBytes>>20)
	}
	runtime.KeepAlive(a)

	// Once the window has passed, the next request releases everything.
	mu.Lock()
	now = now.Add(l.Window + time.Second)
	mu.Unlock()
	attempt("192.0.2.1:1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer guess") })
	if n := g.Len(); n != 1 {
		t.Errorf("%d entries after the window, want only the last failure's", n)
	}
}

// TestUnknownUsersHaveNoCounts pins that only configured users get a count
// of their own: a guess at a name that does not exist counts against its
// address only.
func TestUnknownUsersHaveNoCounts(t *testing.T) {
	g := NewGuard()
	a := New(Options{
		BasicAuthUsers: map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.MinCost)},
		Guard:          g,
		Limits:         Limits{MaxFailures: 10, Window: time.Minute},
	})
	for _, tc := range []struct {
		user string
		want int // entries added: address, user, user and address
	}{
		{"mallory", 1},
		{"alice", 2}, // the address entry exists already
	} {
		before := g.Len()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		r.SetBasicAuth(tc.user, "wrong")
		_, _ = a.Authenticate(r)
		if got := g.Len() - before; got != tc.want {
			t.Errorf("%s: %d entries added, want %d", tc.user, got, tc.want)
		}
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
