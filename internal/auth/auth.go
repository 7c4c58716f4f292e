// Package auth authenticates an HTTP request into an identity.Identity.
//
// The order is fixed, and a request is judged by the first rule that applies;
// credentials that fail never fall through to a later rule:
//
//  1. Trusted header. When a header name is configured and the request
//     carries that header, it is honoured only if the request's RemoteAddr
//     lies inside one of the trusted source prefixes: the identity is the
//     header's value (Method "header"). From any other source the request is
//     refused with Forbidden, never authenticated another way, since it is
//     an attempt to claim an identity. An empty value, or the header given
//     more than once, is Unauthorized.
//  2. Basic auth. When basic auth users are configured and the request has
//     an Authorization header, it must be valid "Basic" credentials of a
//     configured user with the right password (Method "basic"); anything
//     else is Unauthorized.
//  3. Otherwise the request presented nothing: Unauthorized ("authentication
//     required").
//
// Unauthorized errors become 401 responses, to which apierror.Write adds the
// WWW-Authenticate challenge.
//
// Passwords are checked with bcrypt, as in Prometheus' web.yml. A bcrypt run
// costs tens of milliseconds by design, far too much for every request, so
// successes are remembered in a small cache; see verify for why the cache
// keeps the security of bcrypt. Neither passwords nor hashes are ever logged
// or returned in an error.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/http"
	"net/netip"
	"net/textproto"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

// Methods recorded in identity.Identity.Method.
const (
	MethodBasic  = "basic"
	MethodHeader = "header"
)

// maxCacheEntries bounds the memory of the success cache: 10k entries of 32
// bytes are well under a megabyte.
const maxCacheEntries = 10000

// Options configure an Authenticator. They are copied by New.
type Options struct {
	// BasicAuthUsers maps user names to bcrypt hashes.
	BasicAuthUsers map[string]string
	// HeaderName is the trusted identity header; empty disables it.
	HeaderName string
	// TrustedSources are the only client addresses whose identity header
	// is believed.
	TrustedSources []netip.Prefix
}

// Authenticator turns requests into identities. It is safe for concurrent
// use and immutable but for its cache; a configuration reload builds a new
// one.
type Authenticator struct {
	users   map[string][]byte // user -> bcrypt hash
	header  string            // canonical header name, or ""
	trusted []netip.Prefix

	// dummyHash is compared against for unknown users, so that they cost
	// as much time as known ones and response times do not reveal which
	// user names exist.
	dummyHash []byte

	// macKey is random per process and never leaves it: without it nobody
	// can compute a cache key, even knowing the user, hash and password.
	macKey []byte
	macs   sync.Pool // of hash.Hash keyed with macKey

	mu    sync.Mutex
	cache map[cacheKey]struct{}

	// bcryptRuns counts bcrypt comparisons, for tests.
	bcryptRuns atomic.Uint64
}

type cacheKey [sha256.Size]byte

// New builds an Authenticator. Users whose hash is not a valid bcrypt hash
// (config.Parse rejects those) can never authenticate.
func New(o Options) *Authenticator {
	a := &Authenticator{
		users:  make(map[string][]byte, len(o.BasicAuthUsers)),
		cache:  make(map[cacheKey]struct{}),
		macKey: make([]byte, 32),
	}
	if _, err := rand.Read(a.macKey); err != nil {
		panic("auth: no randomness for the cache key: " + err.Error())
	}
	a.macs.New = func() any { return hmac.New(sha256.New, a.macKey) }

	maxCost := 0
	for user, h := range o.BasicAuthUsers {
		a.users[user] = []byte(h)
		if c, err := bcrypt.Cost([]byte(h)); err == nil && c > maxCost {
			maxCost = c
		}
	}
	if maxCost == 0 {
		maxCost = bcrypt.DefaultCost
	}
	if len(a.users) > 0 {
		// The dummy is the hash of a random password nobody knows, at the
		// highest cost in use, so an unknown user is never faster than a
		// known one. (A user with a cheaper hash may answer faster than an
		// unknown one: that reveals that the user exists, nothing about
		// passwords.) Without basic users verify never runs.
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		dummy, err := bcrypt.GenerateFromPassword(secret, maxCost)
		if err != nil {
			panic("auth: generating the dummy hash: " + err.Error())
		}
		a.dummyHash = dummy
	}

	if o.HeaderName != "" {
		a.header = textproto.CanonicalMIMEHeaderKey(o.HeaderName)
		a.trusted = append([]netip.Prefix(nil), o.TrustedSources...)
	}
	return a
}

// IdentityHeaders returns the names of the request headers that carry
// identity, in canonical form. The proxy strips them before forwarding, so
// neither credentials nor a claimed identity reach an upstream.
func (a *Authenticator) IdentityHeaders() []string {
	hs := []string{"Authorization"}
	if a.header != "" {
		hs = append(hs, a.header)
	}
	return hs
}

// Authenticate returns the identity of r, or an *apierror.Error: Forbidden
// for an identity header from an untrusted source, Unauthorized otherwise.
// See the package comment for the order of the checks.
func (a *Authenticator) Authenticate(r *http.Request) (identity.Identity, error) {
	if a.header != "" {
		// Go's server canonicalises header names, so a lookup by the
		// canonical name sees every spelling the client used.
		if values, present := r.Header[a.header]; present {
			return a.fromHeader(r, values)
		}
	}

	if len(a.users) > 0 && r.Header.Get("Authorization") != "" {
		user, pass, ok := r.BasicAuth()
		if !ok {
			return identity.Identity{}, apierror.New(apierror.Unauthorized, "malformed Authorization header: want Basic credentials")
		}
		if !a.verify(user, pass) {
			// One message for unknown users and wrong passwords, so the
			// answer does not reveal which user names exist.
			return identity.Identity{}, apierror.New(apierror.Unauthorized, "invalid user name or password")
		}
		return identity.Identity{User: user, Method: MethodBasic}, nil
	}

	return identity.Identity{}, apierror.New(apierror.Unauthorized, "authentication required")
}

func (a *Authenticator) fromHeader(r *http.Request, values []string) (identity.Identity, error) {
	// The source is checked before anything else about the header, and a
	// claim from elsewhere is refused outright rather than ignored: falling
	// through to basic auth would let a client test which headers reach us.
	if !a.trustedSource(r.RemoteAddr) {
		return identity.Identity{}, apierror.New(apierror.Forbidden, "identity header %s from untrusted source", a.header)
	}
	if len(values) != 1 {
		// Two values mean a proxy appended its header to one the client
		// sent; neither can be trusted to be the proxy's.
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "identity header %s given more than once", a.header)
	}
	if values[0] == "" {
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "identity header %s is empty", a.header)
	}
	return identity.Identity{User: values[0], Method: MethodHeader}, nil
}

// trustedSource reports whether remoteAddr ("ip:port", as set by net/http)
// lies in a trusted prefix. Anything unparsable is untrusted.
func (a *Authenticator) trustedSource(remoteAddr string) bool {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if ip, err := netip.ParseAddr(remoteAddr); err == nil {
		addr = ip
	} else {
		return false
	}
	// A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d, which
	// an IPv4 prefix would not contain; a zone would make Contains false.
	addr = addr.Unmap().WithZone("")
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// verify checks a user's password.
//
// Why the success cache is safe:
//   - Only successes are cached, so a guess is always checked by bcrypt and
//     guessing costs an attacker as much as without the cache.
//   - The key is HMAC-SHA256 under a random per-process key of the user, the
//     password and the stored hash, each length-prefixed so that no two
//     different triples frame to the same bytes. Without the HMAC key no one
//     can build a key that hits, not even with the hash in hand (the hash is
//     not the password, and the key needs both). Entries for another user or
//     for an old hash can never match, so a reload that changes a hash
//     invalidates them without any bookkeeping.
//   - The cache stores MACs, never passwords, so a memory dump of it is
//     useless offline.
//   - Lookup compares MACs, not secrets. The map's comparison is not
//     constant-time, but the MAC of each guess is unpredictable without the
//     key, and changes entirely with any change of the guess, so timing
//     tells nothing that helps build the next guess.
//   - It is bounded: when full, one arbitrary entry is evicted (map
//     iteration starts at a random place), so it cannot grow without limit
//     whatever the number of users.
func (a *Authenticator) verify(user, pass string) bool {
	stored, known := a.users[user]
	if !known {
		// Spend the same time as a known user, and fail.
		_ = a.compare(a.dummyHash, pass)
		return false
	}
	key := a.cacheKey(user, pass, stored)
	a.mu.Lock()
	_, hit := a.cache[key]
	a.mu.Unlock()
	if hit {
		return true
	}
	if !a.compare(stored, pass) {
		return false
	}
	a.mu.Lock()
	if _, present := a.cache[key]; !present {
		if len(a.cache) >= maxCacheEntries {
			for k := range a.cache {
				delete(a.cache, k)
				break
			}
		}
		a.cache[key] = struct{}{}
	}
	a.mu.Unlock()
	return true
}

// compare runs bcrypt, which compares in constant time.
func (a *Authenticator) compare(hash []byte, pass string) bool {
	a.bcryptRuns.Add(1)
	return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
}

func (a *Authenticator) cacheKey(user, pass string, stored []byte) cacheKey {
	m := a.macs.Get().(hash.Hash)
	m.Reset()
	var n [8]byte
	for _, part := range [][]byte{[]byte(user), []byte(pass), stored} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write(part)
	}
	var k cacheKey
	m.Sum(k[:0])
	a.macs.Put(m)
	return k
}
