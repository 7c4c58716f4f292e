// Package auth authenticates an HTTP request into an identity.Identity.
//
// The order is fixed, and a request is judged by the first rule that applies;
// credentials that fail never fall through to a later rule:
//
//  1. Client certificate. When client_certificate is configured and the
//     TLS client presented a certificate, it must have been verified
//     against the web configuration's client CA; its subject CN or a SAN
//     names the user and its OUs (or Os) may name groups (Method
//     "certificate"). An unverified certificate, or one without the
//     configured name, is Unauthorized. It comes first because the TLS
//     layer has already proven it: nothing a client can put in a header is
//     stronger.
//  2. Trusted header. When a header name is configured and the request
//     carries that header, it is honoured only if the request's RemoteAddr
//     lies inside one of the trusted source prefixes: the identity is the
//     header's value (Method "header"). From any other source the request is
//     refused with Forbidden, never authenticated another way, since it is
//     an attempt to claim an identity. An empty value, or the header given
//     more than once, is Unauthorized.
//  3. Authorization header, when basic users, API tokens or a JWT issuer
//     are configured. "Bearer" credentials are looked up among the static
//     API tokens (Method "token") and, failing that, verified as a JWT
//     (Method "jwt"); "Basic" credentials must be a configured user with the
//     right password (Method "basic"). Any other scheme, malformed
//     credentials, or a credential that does not verify, is Unauthorized.
//  4. Otherwise the request presented nothing: Unauthorized ("authentication
//     required").
//
// Unauthorized errors become 401 responses, to which apierror.Write adds the
// WWW-Authenticate challenge.
//
// Failed logins (wrong passwords, unknown users, unknown tokens, forged
// JWTs, unknown JWT keys) are counted by a Guard per source address and per
// configured user; past the configured number in the window, attempts are
// refused with TooManyRequests (429, see RetryAfter) before any credential
// is checked.
//
// Passwords are checked with bcrypt, as in Prometheus' web.yml. A bcrypt run
// costs tens of milliseconds by design, far too much for every request, so
// successes are remembered in a small cache; see verify for why the cache
// keeps the security of bcrypt. Neither passwords, tokens nor hashes are
// ever logged or returned in an error.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
)

// Methods recorded in identity.Identity.Method.
const (
	MethodCertificate = "certificate"
	MethodHeader      = "header"
	MethodToken       = "token"
	MethodJWT         = "jwt"
	MethodBasic       = "basic"
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
	// ClientCertificate, when set, names users after verified client
	// certificates.
	ClientCertificate *CertificateOptions
	// Tokens maps the SHA-256 of each static API token to its user.
	Tokens map[[sha256.Size]byte]string
	// JWT, when set, verifies bearer tokens that are JWTs.
	JWT *JWTOptions
	// Guard counts failed logins; nil means a new one. Share one Guard
	// across reloads so that a reload does not forget failures.
	Guard *Guard
	// Limits are the Guard's limits for this configuration.
	Limits Limits
}

// Authenticator turns requests into identities. It is safe for concurrent
// use and immutable but for its caches; a configuration reload builds a new
// one.
type Authenticator struct {
	users   map[string][]byte // user -> bcrypt hash
	header  string            // canonical header name, or ""
	trusted []netip.Prefix
	cert    *CertificateOptions
	tokens  map[[sha256.Size]byte]string
	jwt     *jwtVerifier
	guard   *Guard
	limits  Limits

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
		tokens: o.Tokens,
		guard:  o.Guard,
		limits: o.Limits,
	}
	if a.guard == nil {
		a.guard = NewGuard()
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
	if o.ClientCertificate != nil {
		c := *o.ClientCertificate
		a.cert = &c
	}
	if o.JWT != nil {
		a.jwt = newJWTVerifier(*o.JWT)
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
// for an identity header from an untrusted source, TooManyRequests for a
// source or user past the failure limit, Unauthorized otherwise. See the
// package comment for the order of the checks.
func (a *Authenticator) Authenticate(r *http.Request) (identity.Identity, error) {
	id, err := a.authenticate(r)
	if err != nil {
		return identity.Identity{}, err
	}
	if err := checkIdentity(id); err != nil {
		return identity.Identity{}, err
	}
	return id, nil
}

// checkIdentity refuses names that are not plain text, whatever method
// asserted them. A control character (NUL above all) could make two
// different identities look alike wherever names are joined, logged or
// templated into an upstream header, and no person, certificate or
// provider needs one.
func checkIdentity(id identity.Identity) error {
	if !plainName(id.User) {
		return apierror.New(apierror.Unauthorized, "the %s credentials name a user with control characters or invalid UTF-8", id.Method)
	}
	for _, g := range id.Groups {
		if !plainName(g) {
			return apierror.New(apierror.Unauthorized, "the %s credentials name a group with control characters or invalid UTF-8", id.Method)
		}
	}
	return nil
}

// plainName reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1).
func plainName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

func (a *Authenticator) authenticate(r *http.Request) (identity.Identity, error) {
	if a.cert != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return a.fromCertificate(r.TLS)
	}

	if a.header != "" {
		// Go's server canonicalises header names, so a lookup by the
		// canonical name sees every spelling the client used.
		if values, present := r.Header[a.header]; present {
			return a.fromHeader(r, values)
		}
	}

	if values, present := r.Header["Authorization"]; present && a.usesAuthorization() {
		return a.fromAuthorization(r, values)
	}

	return identity.Identity{}, apierror.New(apierror.Unauthorized, "authentication required")
}

// usesAuthorization reports whether any method reads the Authorization
// header. When none does, the header is not credentials promgate checks.
func (a *Authenticator) usesAuthorization() bool {
	return len(a.users) > 0 || a.bearer()
}

func (a *Authenticator) bearer() bool { return len(a.tokens) > 0 || a.jwt != nil }

func (a *Authenticator) fromAuthorization(r *http.Request, values []string) (identity.Identity, error) {
	if len(values) != 1 {
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "Authorization header given more than once")
	}
	scheme, credentials, _ := strings.Cut(values[0], " ")
	switch {
	case strings.EqualFold(scheme, "Basic") && len(a.users) > 0:
		user, pass, ok := r.BasicAuth()
		if !ok {
			return identity.Identity{}, a.malformed()
		}
		return a.fromBasic(r, user, pass)
	case strings.EqualFold(scheme, "Bearer") && a.bearer():
		token := strings.TrimLeft(credentials, " ")
		if token == "" || strings.ContainsAny(token, " \t") {
			return identity.Identity{}, a.malformed()
		}
		return a.fromBearer(r, token)
	}
	return identity.Identity{}, a.malformed()
}

func (a *Authenticator) malformed() error {
	want := "Basic credentials"
	switch {
	case len(a.users) > 0 && a.bearer():
		want = "Basic credentials or a Bearer token"
	case a.bearer():
		want = "a Bearer token"
	}
	return apierror.New(apierror.Unauthorized, "malformed Authorization header: want %s", want)
}

func (a *Authenticator) fromBasic(r *http.Request, user, pass string) (identity.Identity, error) {
	src := sourceOf(r.RemoteAddr)
	// Only configured users have counts of their own: a name that does not
	// exist can never log in, so guesses at it are counted against their
	// address alone, and hostile names cannot fill the Guard.
	counted := ""
	if _, known := a.users[user]; known {
		counted = user
	}
	// The limit is checked before bcrypt: a blocked guesser costs nothing.
	if err := a.guard.check(a.limits, src, counted); err != nil {
		return identity.Identity{}, err
	}
	if !a.verify(user, pass) {
		a.guard.fail(a.limits, src, counted)
		// One message for unknown users and wrong passwords, so the
		// answer does not reveal which user names exist.
		return identity.Identity{}, apierror.New(apierror.Unauthorized, "invalid user name or password")
	}
	return identity.Identity{User: user, Method: MethodBasic}, nil
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
	addr, ok := parseRemote(remoteAddr)
	if !ok {
		return false
	}
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseRemote parses a request's RemoteAddr. A dual-stack listener reports
// IPv4 clients as ::ffff:a.b.c.d, which an IPv4 prefix would not contain,
// so the address is unmapped; a zone would make Contains false, so it is
// dropped.
func parseRemote(remoteAddr string) (netip.Addr, bool) {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if ip, err := netip.ParseAddr(remoteAddr); err == nil {
		addr = ip
	} else {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

// tlsVerified reports whether the TLS layer verified the client's
// certificate chain.
func tlsVerified(cs *tls.ConnectionState) bool { return len(cs.VerifiedChains) > 0 }
