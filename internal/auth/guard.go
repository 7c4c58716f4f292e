package auth

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promgate/promgate/internal/apierror"
)

// Limits say how many failed logins are tolerated.
type Limits struct {
	// MaxFailures within Window; 0 disables the limits.
	MaxFailures int
	Window      time.Duration
}

// maxGuardEntries bounds the Guard's memory: a few hundred bytes each.
const maxGuardEntries = 100000

// Guard counts failed logins per source address, per user, and per user and
// address, so that guessing passwords or tokens is limited to MaxFailures
// attempts per Window:
//
//   - A source address with MaxFailures failures in the window is refused
//     anything that presents credentials, before the credentials are
//     checked.
//   - A user with MaxFailures failures in the window (from anywhere) is
//     refused from every address that has itself failed for that user in
//     the window. Other addresses are still checked, so that a guesser
//     cannot lock the real user out from where the user works, but each
//     such address is refused after its first failure: a distributed
//     guesser gets one guess per address and window.
//
// Successes do not reset counts: an attacker holding one valid account
// could otherwise interleave its own logins to keep guessing.
//
// IPv6 sources are counted by /64, the block a single host typically
// controls. A Guard is shared by the Authenticators of successive
// configurations so that a reload does not forget failures.
type Guard struct {
	mu      sync.Mutex
	entries map[string]*failures
	// size is len(entries), readable without the lock so that a Guard with
	// nothing recorded costs requests nothing.
	size atomic.Int64
	now  func() time.Time
}

// failures are the recent failure times of one key, oldest first; at most
// MaxFailures are kept.
type failures struct {
	times []time.Time
}

// NewGuard returns an empty Guard.
func NewGuard() *Guard {
	return &Guard{entries: map[string]*failures{}, now: time.Now}
}

// sourceOf returns the key of a request's source address, or "" when it
// cannot be parsed (then only the user's count applies).
func sourceOf(remoteAddr string) string {
	addr, ok := parseRemote(remoteAddr)
	if !ok {
		return ""
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func addrKey(src string) string       { return "a\x00" + src }
func userKey(user string) string      { return "u\x00" + user }
func pairKey(user, src string) string { return "p\x00" + user + "\x00" + src }

// RateLimitedError is returned for a login refused by the Guard. It unwraps
// to an *apierror.Error of type TooManyRequests.
type RateLimitedError struct {
	err *apierror.Error
	// RetryAfter is when the refusal ends.
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string { return e.err.Error() }

// Unwrap returns the *apierror.Error, so that apierror.Write answers 429.
func (e *RateLimitedError) Unwrap() error { return e.err }

// RetryAfter returns the seconds to put in a Retry-After header for err,
// and whether err is a refusal by the Guard.
func RetryAfter(err error) (int, bool) {
	var rl *RateLimitedError
	if !errors.As(err, &rl) {
		return 0, false
	}
	return max(1, int(math.Ceil(rl.RetryAfter.Seconds()))), true
}

// check returns a *RateLimitedError when src or user (either may be "") is
// past the limits.
func (g *Guard) check(l Limits, src, user string) error {
	if l.MaxFailures <= 0 || g.size.Load() == 0 {
		return nil
	}
	g.mu.Lock()
	now := g.now()
	var wait time.Duration
	if src != "" {
		wait = g.waitLocked(l, addrKey(src), l.MaxFailures, now)
	}
	if wait == 0 && user != "" {
		if uw := g.waitLocked(l, userKey(user), l.MaxFailures, now); uw > 0 {
			// The pair's own failure ages out before the user's count
			// may; whichever comes first lifts the refusal.
			if pw := g.waitLocked(l, pairKey(user, src), 1, now); pw > 0 {
				wait = min(uw, pw)
			}
		}
	}
	g.mu.Unlock()
	if wait == 0 {
		return nil
	}
	// The message names neither the user nor whether it exists.
	return &RateLimitedError{
		err:        apierror.New(apierror.TooManyRequests, "too many failed logins; retry after %s", wait.Round(time.Second)),
		RetryAfter: wait,
	}
}

// waitLocked returns how long key stays at n or more failures in the
// window, 0 if it is below.
func (g *Guard) waitLocked(l Limits, key string, n int, now time.Time) time.Duration {
	f := g.entries[key]
	if f == nil {
		return 0
	}
	f.prune(now.Add(-l.Window))
	if len(f.times) < n {
		return 0
	}
	// The n-th most recent failure leaving the window brings the count
	// below n.
	return f.times[len(f.times)-n].Add(l.Window).Sub(now)
}

func (f *failures) prune(cutoff time.Time) {
	i := 0
	for i < len(f.times) && !f.times[i].After(cutoff) {
		i++
	}
	if i > 0 {
		f.times = append(f.times[:0], f.times[i:]...)
	}
}

// fail records a failed login from src for user (either may be "").
func (g *Guard) fail(l Limits, src, user string) {
	if l.MaxFailures <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if src != "" {
		g.addLocked(l, addrKey(src), now)
	}
	if user != "" {
		g.addLocked(l, userKey(user), now)
		g.addLocked(l, pairKey(user, src), now)
	}
	g.size.Store(int64(len(g.entries)))
}

func (g *Guard) addLocked(l Limits, key string, now time.Time) {
	f := g.entries[key]
	if f == nil {
		if len(g.entries) >= maxGuardEntries {
			g.evictLocked(l, now)
		}
		f = &failures{}
		g.entries[key] = f
	}
	f.prune(now.Add(-l.Window))
	f.times = append(f.times, now)
	if extra := len(f.times) - l.MaxFailures; extra > 0 {
		f.times = append(f.times[:0], f.times[extra:]...)
	}
}

// evictLocked makes room: first every key whose failures all left the
// window, then, if that was not enough, arbitrary keys (map order is
// random) down to 90% of the bound.
func (g *Guard) evictLocked(l Limits, now time.Time) {
	cutoff := now.Add(-l.Window)
	for k, f := range g.entries {
		if f.prune(cutoff); len(f.times) == 0 {
			delete(g.entries, k)
		}
	}
	for k := range g.entries {
		if len(g.entries) < maxGuardEntries*9/10 {
			break
		}
		delete(g.entries, k)
	}
}

// Len returns the number of keys the Guard holds, for tests and metrics.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}
