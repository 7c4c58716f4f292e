package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/identity"
)

// fromBearer authenticates a bearer token: a static API token, else a JWT.
//
// Static tokens are found by their SHA-256 in a map. Comparing hashes
// rather than tokens means the lookup's timing depends on the hash of the
// guess, which an attacker cannot steer towards a stored hash; and the
// configuration, holding only hashes, does not hold usable tokens.
func (a *Authenticator) fromBearer(r *http.Request, token string) (identity.Identity, error) {
	src := sourceOf(r.RemoteAddr)
	if err := a.guard.check(a.limits, src, ""); err != nil {
		return identity.Identity{}, err
	}
	sum := sha256.Sum256([]byte(token))
	if user, ok := a.tokens[sum]; ok {
		return identity.Identity{User: user, Method: MethodToken}, nil
	}
	if a.jwt != nil && strings.Count(token, ".") == 2 {
		id, err := a.jwt.verify(token, sum)
		switch {
		case errors.Is(err, ErrNoKeys):
			// The provider, not the client, is at fault: neither a guess
			// nor a credential that can be judged.
			return identity.Identity{}, apierror.New(apierror.Unavailable, "cannot verify the bearer token: %v", err)
		case err != nil:
			// Forged or garbled tokens, and tokens naming a key the
			// provider does not publish, count as guesses: each unknown
			// kid may cost a JWKS fetch. Genuine tokens that are expired,
			// or meant for another audience, do not: a Grafana forwarding
			// one user's stale token must not get its own address blocked
			// for every user behind it.
			if errors.Is(err, jwt.ErrMalformed) || errors.Is(err, jwt.ErrAlgorithm) ||
				errors.Is(err, jwt.ErrSignature) || errors.Is(err, jwt.ErrUnknownKey) {
				a.guard.fail(a.limits, src, "")
			}
			return identity.Identity{}, apierror.New(apierror.Unauthorized, "invalid bearer token: %v", err)
		}
		return id, nil
	}
	a.guard.fail(a.limits, src, "")
	return identity.Identity{}, apierror.New(apierror.Unauthorized, "invalid bearer token")
}

// JWTOptions configure the verification of JWT bearer tokens.
type JWTOptions struct {
	// Validation holds the issuer, audiences, algorithms and leeway.
	Validation jwt.Validation
	// UserClaim names the user; GroupsClaim, if set, the groups.
	UserClaim   string
	GroupsClaim string
	// Keys supplies the verification keys.
	Keys Keys
}

// Keys supplies JWT verification keys.
type Keys interface {
	// Current returns the key set in use (nil when none could be loaded
	// yet) and its generation, which changes whenever the keys do.
	Current() (*jwt.KeySet, uint64)
	// Refresh is called when a token names a key the current set lacks.
	// It may load the keys again (rate-limited) and returns the result;
	// it returns within a short bound even when loading takes longer.
	Refresh() (*jwt.KeySet, uint64)
}

// ErrNoKeys is returned for a JWT when no key set could be loaded (yet):
// the identity provider is unreachable or slower than JWKSWait. It wraps
// jwt.ErrUnknownKey and is answered 503, not 401.
var ErrNoKeys = fmt.Errorf("%w: the identity provider's keys are not available yet (retry shortly)", jwt.ErrUnknownKey)

// maxJWTCacheEntries bounds the cache of verified tokens.
const maxJWTCacheEntries = 10000

// jwtVerifier verifies JWTs and caches the identities of valid ones until
// they expire, so that a client sending the same token on every request
// pays for one signature verification.
type jwtVerifier struct {
	o   JWTOptions
	now func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]jwtEntry
}

type jwtEntry struct {
	id       identity.Identity
	notAfter time.Time
	gen      uint64 // key set generation the token verified with
}

func newJWTVerifier(o JWTOptions) *jwtVerifier {
	now := o.Validation.Now
	if now == nil {
		now = time.Now
	}
	o.Validation.Now = now
	return &jwtVerifier{o: o, now: now, cache: map[[sha256.Size]byte]jwtEntry{}}
}

// verify checks token, whose SHA-256 is sum.
//
// The cache is keyed by the token's hash: only the exact token verified
// before can hit. An entry is used only until the token's exp (plus the
// leeway) and only while the key set is the one it verified with, so a
// key removed from the JWKS stops its tokens at the next refresh.
func (v *jwtVerifier) verify(token string, sum [sha256.Size]byte) (identity.Identity, error) {
	ks, gen := v.o.Keys.Current()
	v.mu.Lock()
	e, hit := v.cache[sum]
	v.mu.Unlock()
	if hit && e.gen == gen && v.now().Before(e.notAfter) {
		return e.id, nil
	}

	find := func(kid, alg string) (crypto.PublicKey, error) {
		if ks != nil {
			k, err := ks.Find(kid, alg)
			if !errors.Is(err, jwt.ErrUnknownKey) {
				return k, err
			}
		}
		// A new key may have been published since the last fetch.
		fresh, freshGen := v.o.Keys.Refresh()
		if fresh == nil {
			return nil, ErrNoKeys
		}
		ks, gen = fresh, freshGen
		return ks.Find(kid, alg)
	}
	tok, err := jwt.Verify(token, find, v.o.Validation)
	if err != nil {
		return identity.Identity{}, err
	}
	user, ok := tok.Claims.String(v.o.UserClaim)
	if !ok {
		return identity.Identity{}, fmt.Errorf("%w: claim %q does not name a user", jwt.ErrClaims, v.o.UserClaim)
	}
	id := identity.Identity{User: user, Method: MethodJWT}
	if v.o.GroupsClaim != "" {
		groups, err := tok.Claims.Strings(v.o.GroupsClaim)
		if err != nil {
			return identity.Identity{}, fmt.Errorf("%w: %v", jwt.ErrClaims, err)
		}
		if len(groups) > 0 {
			id.Groups = groups
		}
	}

	v.mu.Lock()
	if len(v.cache) >= maxJWTCacheEntries {
		// Expired entries go first, then arbitrary ones (map order is
		// random) down to 90% of the bound.
		now := v.now()
		for k, old := range v.cache {
			if !now.Before(old.notAfter) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < maxJWTCacheEntries*9/10 {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[sum] = jwtEntry{id: id, notAfter: tok.Expiry.Add(v.o.Validation.Leeway), gen: gen}
	v.mu.Unlock()
	return id, nil
}

// StaticKeys is a key set loaded once, from a file; a reload loads it again.
type StaticKeys struct{ KeySet *jwt.KeySet }

// Current returns the key set.
func (s StaticKeys) Current() (*jwt.KeySet, uint64) { return s.KeySet, 0 }

// Refresh returns the key set: a file changes only on reload.
func (s StaticKeys) Refresh() (*jwt.KeySet, uint64) { return s.KeySet, 0 }

// Defaults of RemoteKeys.
const (
	// jwksMinInterval is the least time between two fetches, however many
	// tokens name unknown keys: clients cannot make promgate hammer the
	// provider.
	jwksMinInterval = 10 * time.Second
	jwksTimeout     = 10 * time.Second
	maxJWKSBytes    = 1 << 20
	// JWKSWait is the longest a request waits for a JWKS fetch it needs
	// (first use, or a token naming an unknown key). The fetch goes on in
	// the background; the request is answered with the keys at hand: 401
	// for an unknown key, 503 (ErrNoKeys) when there are none yet.
	JWKSWait = 2 * time.Second
)

// RemoteKeys is a JWKS fetched from a URL: on first use, again in the
// background once the refresh interval has passed, and when a token names
// an unknown key (at most once per jwksMinInterval). A failed fetch keeps
// the previous keys. A request waits at most JWKSWait for a fetch; one
// fetch runs at a time, and every request that needs it waits on that
// one. It starts no goroutine until used, and the one it starts ends with
// its fetch (jwksTimeout), so an Authenticator dropped by a reload stops.
type RemoteKeys struct {
	url         string
	client      *http.Client
	refresh     time.Duration
	minInterval time.Duration
	wait        time.Duration
	logger      *slog.Logger
	now         func() time.Time

	mu          sync.Mutex // guards lastAttempt and inflight
	lastAttempt time.Time
	inflight    chan struct{} // closed when the running fetch ends; nil if none
	state       atomic.Pointer[keyState]
}

type keyState struct {
	ks      *jwt.KeySet
	raw     []byte
	gen     uint64
	fetched time.Time
}

// NewRemoteKeys returns the keys at url, fetched with client (nil: a
// default client) and refreshed every refresh.
func NewRemoteKeys(url string, client *http.Client, refresh time.Duration, logger *slog.Logger) *RemoteKeys {
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &RemoteKeys{
		url: url, client: client, refresh: refresh, minInterval: jwksMinInterval,
		wait: JWKSWait, logger: logger, now: time.Now,
	}
}

// Current returns the keys, fetching them on first use (waiting at most
// JWKSWait) and starting a background refresh when they are older than
// the refresh interval.
func (k *RemoteKeys) Current() (*jwt.KeySet, uint64) {
	st := k.state.Load()
	if st == nil {
		return k.Refresh()
	}
	if k.now().Sub(st.fetched) >= k.refresh {
		k.start()
	}
	return st.ks, st.gen
}

// Refresh starts a fetch, unless one is running (then it joins it) or one
// was attempted less than the minimum interval ago, waits for it at most
// JWKSWait, and returns the keys in use.
func (k *RemoteKeys) Refresh() (*jwt.KeySet, uint64) {
	if done := k.start(); done != nil {
		t := time.NewTimer(k.wait)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	if st := k.state.Load(); st != nil {
		return st.ks, st.gen
	}
	return nil, 0
}

// start returns a channel closed when the running fetch ends, starting
// one if allowed; nil when no fetch runs.
func (k *RemoteKeys) start() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	now := k.now()
	if !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.minInterval {
		return nil
	}
	k.lastAttempt = now
	done := make(chan struct{})
	k.inflight = done
	go func() {
		k.fetch(now)
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		close(done)
	}()
	return done
}

// fetching reports whether a fetch is running, for tests.
func (k *RemoteKeys) fetching() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.inflight != nil
}

func (k *RemoteKeys) fetch(now time.Time) {
	raw, ks, err := k.get()
	if err != nil {
		k.logger.Warn("fetching the JWKS failed; keeping the previous keys", "url", k.url, "err", err)
		return
	}
	old := k.state.Load()
	next := &keyState{ks: ks, raw: raw, gen: 1, fetched: now}
	if old != nil {
		next.gen = old.gen
		if !bytes.Equal(old.raw, raw) {
			next.gen++
		} else {
			next.ks = old.ks
		}
	}
	k.state.Store(next)
}

func (k *RemoteKeys) get() ([]byte, *jwt.KeySet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %s", resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("JWKS larger than %d bytes", maxJWKSBytes)
	}
	ks, skipped, err := jwt.ParseKeySet(raw)
	if err != nil {
		return nil, nil, err
	}
	if len(skipped) > 0 {
		k.logger.Debug("JWKS keys skipped", "url", k.url, "skipped", strings.Join(skipped, "; "))
	}
	return raw, ks, nil
}
