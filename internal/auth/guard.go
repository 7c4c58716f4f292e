package auth

import (
	"crypto/sha256"
	"errors"
	"math"
	"net/netip"
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

// Memory bounds of a Guard. An entry is a fixed-size key and the times of
// its recent failures, so its size does not depend on anything a client
// sends: user names are hashed into the key. entryOverhead estimates the
// key, the map slot and its share of the map's growth, the failures value
// and the slice header (measured: about 250 bytes on amd64); every recorded
// failure adds failureBytes.
const (
	maxGuardBytes = 16 << 20
	entryOverhead = 256
	failureBytes  = 8
)

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
// Memory is bounded in bytes, not only in keys: a user enters a key as a
// hash, the Authenticator names only configured users (a guess at a name
// that does not exist is counted against its address alone, so hostile
// names cannot fill the table), entries whose failures have all left the
// window are deleted at least once per window, and past maxGuardBytes the
// oldest-looking entries go first, then arbitrary ones.
//
// IPv6 sources are counted by /64, the block a single host typically
// controls. A Guard is shared by the Authenticators of successive
// configurations so that a reload does not forget failures.
type Guard struct {
	mu      sync.Mutex
	entries map[guardKey]*failures
	// bytes estimates the memory of entries (see entryOverhead); maxBytes
	// bounds it.
	bytes, maxBytes int
	// swept is when empty entries were last deleted.
	swept time.Time
	// size is len(entries), readable without the lock so that a Guard with
	// nothing recorded costs requests nothing.
	size atomic.Int64
	now  func() time.Time
}

// Kinds of guardKey.
const (
	keyAddr = iota + 1
	keyUser
	keyPair
)

// guardKey is what a count is kept for. It has a fixed size.
type guardKey struct {
	kind uint8
	src  netip.Prefix
	user [16]byte // truncated SHA-256 of the user name
}

// failures are the recent failure times of one key (Unix nanoseconds),
// oldest first; at most MaxFailures are kept.
type failures struct {
	times []int64
}

// NewGuard returns an empty Guard.
func NewGuard() *Guard {
	return &Guard{entries: map[guardKey]*failures{}, maxBytes: maxGuardBytes, now: time.Now}
}

// sourceOf returns the key of a request's source address: the address
// itself for IPv4, its /64 for IPv6, or the zero Prefix when it cannot be
// parsed (then only the user's count applies).
func sourceOf(remoteAddr string) netip.Prefix {
	addr, ok := parseRemote(remoteAddr)
	if !ok {
		return netip.Prefix{}
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

func userHash(user string) [16]byte {
	sum := sha256.Sum256([]byte(user))
	return [16]byte(sum[:16])
}

func addrKey(src netip.Prefix) guardKey { return guardKey{kind: keyAddr, src: src} }
func userKey(u [16]byte) guardKey       { return guardKey{kind: keyUser, user: u} }
func pairKey(u [16]byte, src netip.Prefix) guardKey {
	return guardKey{kind: keyPair, src: src, user: u}
}

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

// check returns a *RateLimitedError when src or user (either may be zero or
// "") is past the limits. The caller passes a user only when it is a
// configured one.
func (g *Guard) check(l Limits, src netip.Prefix, user string) error {
	if l.MaxFailures <= 0 || g.size.Load() == 0 {
		return nil
	}
	var uh [16]byte
	if user != "" {
		uh = userHash(user)
	}
	g.mu.Lock()
	now := g.now()
	g.sweepLocked(l, now)
	var wait time.Duration
	if src.IsValid() {
		wait = g.waitLocked(l, addrKey(src), l.MaxFailures, now)
	}
	if wait == 0 && user != "" {
		if uw := g.waitLocked(l, userKey(uh), l.MaxFailures, now); uw > 0 {
			// The pair's own failure ages out before the user's count
			// may; whichever comes first lifts the refusal.
			if pw := g.waitLocked(l, pairKey(uh, src), 1, now); pw > 0 {
				wait = min(uw, pw)
			}
		}
	}
	g.size.Store(int64(len(g.entries)))
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
// window, 0 if it is below. An entry found empty is deleted.
func (g *Guard) waitLocked(l Limits, key guardKey, n int, now time.Time) time.Duration {
	f := g.entries[key]
	if f == nil {
		return 0
	}
	g.pruneLocked(key, f, cutoff(l, now))
	if len(f.times) < n {
		return 0
	}
	// The n-th most recent failure leaving the window brings the count
	// below n.
	return time.Unix(0, f.times[len(f.times)-n]).Add(l.Window).Sub(now)
}

func cutoff(l Limits, now time.Time) int64 { return now.Add(-l.Window).UnixNano() }

// pruneLocked drops f's failures at or before cutoff, and the entry itself
// when none is left.
func (g *Guard) pruneLocked(key guardKey, f *failures, cutoff int64) {
	i := 0
	for i < len(f.times) && f.times[i] <= cutoff {
		i++
	}
	if i > 0 {
		f.times = append(f.times[:0], f.times[i:]...)
	}
	if len(f.times) == 0 {
		g.bytes -= entryOverhead + failureBytes*cap(f.times)
		delete(g.entries, key)
	}
}

// sweepLocked deletes every entry whose failures have all left the window,
// at most once per window: entries nobody asks about again go within two
// windows, at a cost spread over a window's requests.
func (g *Guard) sweepLocked(l Limits, now time.Time) {
	if now.Sub(g.swept) < l.Window {
		return
	}
	g.swept = now
	c := cutoff(l, now)
	for k, f := range g.entries {
		g.pruneLocked(k, f, c)
	}
}

// fail records a failed login from src for user (either may be zero or
// ""). The caller passes a user only when it is a configured one.
func (g *Guard) fail(l Limits, src netip.Prefix, user string) {
	if l.MaxFailures <= 0 {
		return
	}
	var uh [16]byte
	if user != "" {
		uh = userHash(user)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.sweepLocked(l, now)
	if src.IsValid() {
		g.addLocked(l, addrKey(src), now)
	}
	if user != "" {
		g.addLocked(l, userKey(uh), now)
		g.addLocked(l, pairKey(uh, src), now)
	}
	g.size.Store(int64(len(g.entries)))
}

func (g *Guard) addLocked(l Limits, key guardKey, now time.Time) {
	c := cutoff(l, now)
	f := g.entries[key]
	if f != nil {
		g.pruneLocked(key, f, c)
		f = g.entries[key]
	}
	if f == nil {
		if g.bytes+entryOverhead+failureBytes > g.maxBytes {
			g.evictLocked(c)
		}
		f = &failures{}
		g.entries[key] = f
		g.bytes += entryOverhead
	}
	before := cap(f.times)
	f.times = append(f.times, now.UnixNano())
	if extra := len(f.times) - l.MaxFailures; extra > 0 {
		f.times = append(f.times[:0], f.times[extra:]...)
	}
	g.bytes += failureBytes * (cap(f.times) - before)
}

// evictLocked makes room: first every entry whose failures all left the
// window, then, if that was not enough, arbitrary entries (map order is
// random) down to 90% of the bound.
func (g *Guard) evictLocked(cutoff int64) {
	for k, f := range g.entries {
		g.pruneLocked(k, f, cutoff)
	}
	for k, f := range g.entries {
		if g.bytes < g.maxBytes*9/10 {
			break
		}
		g.bytes -= entryOverhead + failureBytes*cap(f.times)
		delete(g.entries, k)
	}
}

// Len returns the number of keys the Guard holds, for tests and metrics.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}
