package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/identity"
)

// Test PKI and JWT material, made once.

type certs struct {
	ca                                       *x509.Certificate
	alice, noCN, sans, stranger, multiGroups *x509.Certificate
}

var testCerts = sync.OnceValue(func() certs {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &key.PublicKey, key)
	ca, _ := x509.ParseCertificate(der)
	leaf := func(serial int64, subj pkix.Name, mod func(*x509.Certificate)) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subj,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if mod != nil {
			mod(tmpl)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	u, _ := url.Parse("spiffe://cluster.local/ns/team-a/sa/grafana")
	return certs{
		ca:    ca,
		alice: leaf(2, pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"team-a", ""}, Organization: []string{"Acme"}}, nil),
		noCN:  leaf(3, pkix.Name{OrganizationalUnit: []string{"team-a"}}, nil),
		sans: leaf(4, pkix.Name{CommonName: "svc"}, func(c *x509.Certificate) {
			c.DNSNames = []string{"grafana.example", "other.example"}
			c.EmailAddresses = []string{"ops@example.com"}
			c.URIs = []*url.URL{u}
		}),
		stranger:    leaf(5, pkix.Name{CommonName: "root"}, nil),
		multiGroups: leaf(6, pkix.Name{CommonName: "bob", OrganizationalUnit: []string{"team-b", "team-c"}}, nil),
	}
})

// verified is the TLS state of a connection whose client presented leaf and
// whose chain the TLS layer verified.
func verified(leaf *x509.Certificate) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, testCerts().ca}}}
}

// unverified is the TLS state with client_auth_type RequestClientCert.
func unverified(leaf *x509.Certificate) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
}

var jwtSigner = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return k
})

func jwksOf(kid string, k *ecdsa.PrivateKey) []byte {
	raw, _ := k.PublicKey.Bytes()
	b := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": kid, "x": b(raw[1:33]), "y": b(raw[33:]),
	}}})
	return doc
}

func testKeySet(t testing.TB) *jwt.KeySet {
	t.Helper()
	ks, _, err := jwt.ParseKeySet(jwksOf("k1", jwtSigner()))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// es256 signs claims with k under kid.
func es256(t testing.TB, kid string, k *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	b := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"alg": "ES256", "kid": kid})
	c, _ := json.Marshal(claims)
	in := b(h) + "." + b(c)
	d := sha256.Sum256([]byte(in))
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return in + "." + b(sig)
}

var jwtNow = time.Unix(1_800_000_000, 0)

func jwtClaims(kv ...any) map[string]any {
	c := map[string]any{"iss": "https://idp", "aud": "promgate", "sub": "u-1", "name": "alice",
		"groups": []string{"team-a", "ops"}, "exp": jwtNow.Unix() + 300}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func jwtOptions(keys Keys, now func() time.Time) *JWTOptions {
	return &JWTOptions{
		Validation: jwt.Validation{Issuer: "https://idp", Audiences: []string{"promgate"}, Leeway: 30 * time.Second, Now: now},
		UserClaim:  "name", GroupsClaim: "groups", Keys: keys,
	}
}

const apiToken = "tok-0123456789abcdef0123456789abcdef"

// fullAuthenticator has every method configured.
func fullAuthenticator(t testing.TB, certFrom, groupsFrom string) *Authenticator {
	t.Helper()
	return New(Options{
		BasicAuthUsers:    map[string]string{"alice": mustHash(t, "alice-pw", bcrypt.MinCost)},
		HeaderName:        "X-User",
		TrustedSources:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		ClientCertificate: &CertificateOptions{UserFrom: certFrom, GroupsFrom: groupsFrom},
		Tokens:            map[[32]byte]string{sha256.Sum256([]byte(apiToken)): "robot"},
		JWT:               jwtOptions(StaticKeys{KeySet: testKeySet(t)}, func() time.Time { return jwtNow }),
		Limits:            Limits{MaxFailures: 100, Window: time.Minute},
	})
}

type methodCase struct {
	name       string
	tls        *tls.ConnectionState
	headers    map[string][]string
	remote     string
	certFrom   string
	groupsFrom string
	want       identity.Identity
	errType    apierror.Type
	errMsg     string
}

func TestAuthenticateMethodsAndOrder(t *testing.T) {
	c := testCerts()
	k := jwtSigner()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	goodJWT := es256(t, "k1", k, jwtClaims())
	bearer := func(tok string) map[string][]string { return map[string][]string{"Authorization": {"Bearer " + tok}} }
	basic := func(u, p string) map[string][]string {
		return map[string][]string{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}}
	}
	with := func(a, b map[string][]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out
	}
	header := map[string][]string{"X-User": {"carol"}}

	for _, tc := range []methodCase{
		// Client certificates.
		{name: "certificate: CN and OUs", tls: verified(c.alice), groupsFrom: CertOU,
			want: identity.Identity{User: "alice", Groups: []string{"team-a"}, Method: MethodCertificate}},
		{name: "certificate: organizations as groups", tls: verified(c.alice), groupsFrom: CertO,
			want: identity.Identity{User: "alice", Groups: []string{"Acme"}, Method: MethodCertificate}},
		{name: "certificate: no groups configured", tls: verified(c.multiGroups),
			want: identity.Identity{User: "bob", Method: MethodCertificate}},
		{name: "certificate: several OUs", tls: verified(c.multiGroups), groupsFrom: CertOU,
			want: identity.Identity{User: "bob", Groups: []string{"team-b", "team-c"}, Method: MethodCertificate}},
		{name: "certificate: first DNS SAN", tls: verified(c.sans), certFrom: CertDNS,
			want: identity.Identity{User: "grafana.example", Method: MethodCertificate}},
		{name: "certificate: email SAN", tls: verified(c.sans), certFrom: CertEmail,
			want: identity.Identity{User: "ops@example.com", Method: MethodCertificate}},
		{name: "certificate: URI SAN", tls: verified(c.sans), certFrom: CertURI,
			want: identity.Identity{User: "spiffe://cluster.local/ns/team-a/sa/grafana", Method: MethodCertificate}},
		{name: "certificate without the configured SAN", tls: verified(c.alice), certFrom: CertDNS,
			errType: apierror.Unauthorized, errMsg: "client certificate has no dns"},
		{name: "certificate without CN", tls: verified(c.noCN),
			errType: apierror.Unauthorized, errMsg: "client certificate has no cn"},
		{name: "certificate wins over a trusted header and a password", tls: verified(c.alice),
			headers: with(header, basic("alice", "alice-pw")), remote: "127.0.0.1:1",
			want: identity.Identity{User: "alice", Method: MethodCertificate}},
		{name: "unverified certificate never falls through to a valid password", tls: unverified(c.stranger),
			headers: basic("alice", "alice-pw"), errType: apierror.Unauthorized, errMsg: "client certificate not verified"},
		{name: "unverified certificate never falls through to a trusted header", tls: unverified(c.stranger),
			headers: header, remote: "127.0.0.1:1", errType: apierror.Unauthorized, errMsg: "not verified"},
		{name: "TLS without a client certificate goes on to basic auth", tls: &tls.ConnectionState{},
			headers: basic("alice", "alice-pw"), want: identity.Identity{User: "alice", Method: MethodBasic}},

		// Trusted header before bearer and basic.
		{name: "trusted header wins over a bearer token", headers: with(header, bearer("garbage")), remote: "127.0.0.1:1",
			want: identity.Identity{User: "carol", Method: MethodHeader}},
		{name: "untrusted header is refused, not passed to a valid token", headers: with(header, bearer(apiToken)), remote: "192.0.2.1:1",
			errType: apierror.Forbidden},

		// Bearer tokens.
		{name: "static API token", headers: bearer(apiToken), want: identity.Identity{User: "robot", Method: MethodToken}},
		{name: "lower-case bearer scheme", headers: map[string][]string{"Authorization": {"bearer " + apiToken}},
			want: identity.Identity{User: "robot", Method: MethodToken}},
		{name: "unknown static token", headers: bearer(apiToken + "x"), errType: apierror.Unauthorized, errMsg: "invalid bearer token"},
		{name: "JWT with groups", headers: bearer(goodJWT),
			want: identity.Identity{User: "alice", Groups: []string{"team-a", "ops"}, Method: MethodJWT}},
		{name: "JWT with one group as a string", headers: bearer(es256(t, "k1", k, jwtClaims("groups", "solo"))),
			want: identity.Identity{User: "alice", Groups: []string{"solo"}, Method: MethodJWT}},
		{name: "JWT without groups", headers: bearer(es256(t, "k1", k, jwtClaims("groups", nil))),
			want: identity.Identity{User: "alice", Method: MethodJWT}},
		{name: "JWT expired", headers: bearer(es256(t, "k1", k, jwtClaims("exp", jwtNow.Unix()-60))),
			errType: apierror.Unauthorized, errMsg: "token expired"},
		{name: "JWT wrong audience", headers: bearer(es256(t, "k1", k, jwtClaims("aud", "other"))),
			errType: apierror.Unauthorized, errMsg: "wrong audience"},
		{name: "JWT signed by another key", headers: bearer(es256(t, "k1", other, jwtClaims())),
			errType: apierror.Unauthorized, errMsg: "invalid signature"},
		{name: "JWT without the user claim", headers: bearer(es256(t, "k1", k, jwtClaims("name", ""))),
			errType: apierror.Unauthorized, errMsg: `claim "name" does not name a user`},
		{name: "JWT with groups of the wrong type", headers: bearer(es256(t, "k1", k, jwtClaims("groups", 3))),
			errType: apierror.Unauthorized, errMsg: "invalid claims"},
		{name: "empty bearer", headers: map[string][]string{"Authorization": {"Bearer "}},
			errType: apierror.Unauthorized, errMsg: "malformed Authorization header: want Basic credentials or a Bearer token"},
		{name: "bearer with spaces", headers: bearer("a b"), errType: apierror.Unauthorized, errMsg: "malformed"},
		{name: "two Authorization headers", headers: map[string][]string{"Authorization": {"Bearer " + apiToken, "Basic x"}},
			errType: apierror.Unauthorized, errMsg: "more than once"},
		{name: "unknown scheme", headers: map[string][]string{"Authorization": {"Digest x"}},
			errType: apierror.Unauthorized, errMsg: "malformed"},

		// Basic.
		{name: "basic", headers: basic("alice", "alice-pw"), want: identity.Identity{User: "alice", Method: MethodBasic}},
		{name: "basic, wrong password", headers: basic("alice", "x"), errType: apierror.Unauthorized, errMsg: "invalid user name or password"},
		{name: "nothing", errType: apierror.Unauthorized, errMsg: "authentication required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certFrom := tc.certFrom
			if certFrom == "" {
				certFrom = CertCN
			}
			a := fullAuthenticator(t, certFrom, tc.groupsFrom)
			r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			r.TLS = tc.tls
			if tc.remote != "" {
				r.RemoteAddr = tc.remote
			}
			for k, vs := range tc.headers {
				r.Header[k] = vs
			}
			got, err := a.Authenticate(r)
			checkResult(t, got, err, tc.want, tc.errType, tc.errMsg)
			if err != nil {
				for _, secret := range []string{apiToken, "alice-pw", goodJWT} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains a credential", err)
					}
				}
			}
		})
	}
}

func checkResult(t *testing.T, got identity.Identity, err error, want identity.Identity, errType apierror.Type, errMsg string) {
	t.Helper()
	if errType == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if got.User != want.User || got.Method != want.Method || !slices.Equal(got.Groups, want.Groups) {
			t.Errorf("identity = %+v, want %+v", got, want)
		}
		return
	}
	var ae *apierror.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *apierror.Error", err, err)
	}
	if ae.Type != errType || !strings.Contains(err.Error(), errMsg) {
		t.Errorf("error %q (%s), want %s containing %q", err, ae.Type, errType, errMsg)
	}
	if got.User != "" || got.Groups != nil {
		t.Errorf("identity %+v returned along with an error", got)
	}
}

// TestCertificatesIgnoredWhenNotConfigured: without client_certificate, a
// certificate (verified or not) does not name anyone; the other methods
// decide.
func TestCertificatesIgnoredWhenNotConfigured(t *testing.T) {
	a := newTestAuthenticator(t)
	r := request{user: "alice", pass: "alice-pw"}.build()
	r.TLS = unverified(testCerts().stranger)
	id, err := a.Authenticate(r)
	if err != nil || id.User != "alice" || id.Method != MethodBasic {
		t.Errorf("got %+v, %v", id, err)
	}
}

// TestMalformedMessages: the 401 for a wrong scheme says what is accepted.
func TestMalformedMessages(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{BasicAuthUsers: map[string]string{"a": "x"}}, "want Basic credentials"},
		{Options{Tokens: map[[32]byte]string{{1}: "a"}}, "want a Bearer token"},
		{Options{BasicAuthUsers: map[string]string{"a": "x"}, Tokens: map[[32]byte]string{{1}: "a"}}, "want Basic credentials or a Bearer token"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Negotiate x")
		if _, err := New(tc.o).Authenticate(r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// TestJWTCache: a valid token is verified once and then served from the
// cache, but never past its expiry, and not after the key set changed.
func TestJWTCache(t *testing.T) {
	now := jwtNow
	keys := &switchableKeys{}
	keys.set(testKeySet(t))
	v := newJWTVerifier(*jwtOptions(keys, func() time.Time { return now }))
	tok := es256(t, "k1", jwtSigner(), jwtClaims())
	sum := sha256.Sum256([]byte(tok))

	if _, err := v.verify(tok, sum); err != nil {
		t.Fatal(err)
	}
	if len(v.cache) != 1 {
		t.Fatalf("cache holds %d entries", len(v.cache))
	}
	// A hit does not look at the keys at all: remove them from the set
	// without changing the generation and the token still passes.
	keys.mu.Lock()
	keys.ks = nil
	keys.mu.Unlock()
	if _, err := v.verify(tok, sum); err != nil {
		t.Fatalf("cached token refused: %v", err)
	}
	// A new key set generation invalidates the entry.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ks, _, _ := jwt.ParseKeySet(jwksOf("k1", other))
	keys.set(ks)
	if _, err := v.verify(tok, sum); !errors.Is(err, jwt.ErrSignature) {
		t.Fatalf("after a key change: %v, want a signature error", err)
	}
	// Expiry applies to cached tokens.
	keys.set(testKeySet(t))
	if _, err := v.verify(tok, sum); err != nil {
		t.Fatal(err)
	}
	now = jwtNow.Add(300*time.Second + 31*time.Second)
	if _, err := v.verify(tok, sum); !errors.Is(err, jwt.ErrExpired) {
		t.Fatalf("after expiry: %v", err)
	}
}

// switchableKeys is a Keys whose set a test replaces.
type switchableKeys struct {
	mu       sync.Mutex
	ks       *jwt.KeySet
	gen      uint64
	refreshN int
}

func (s *switchableKeys) set(ks *jwt.KeySet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ks = ks
	s.gen++
}

func (s *switchableKeys) Current() (*jwt.KeySet, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ks, s.gen
}

func (s *switchableKeys) Refresh() (*jwt.KeySet, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshN++
	return s.ks, s.gen
}

func TestRemoteKeys(t *testing.T) {
	k1 := jwtSigner()
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var (
		mu      sync.Mutex
		doc     = jwksOf("k1", k1)
		status  = http.StatusOK
		fetches atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write(doc)
	}))
	defer srv.Close()
	publish := func(d []byte, s int) {
		mu.Lock()
		doc, status = d, s
		mu.Unlock()
	}

	// The clock is read by the background refresh too.
	var nowNs atomic.Int64
	nowNs.Store(jwtNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNs.Load()) }
	advance := func(d time.Duration) { nowNs.Add(int64(d)) }
	rk := NewRemoteKeys(srv.URL, srv.Client(), time.Minute, nil)
	rk.now = clock
	v := newJWTVerifier(*jwtOptions(rk, clock))
	check := func(step, tok string, want error) {
		t.Helper()
		_, err := v.verify(tok, sha256.Sum256([]byte(tok)))
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("%s: err = %v, want %v", step, err, want)
		}
	}

	if fetches.Load() != 0 {
		t.Fatal("fetched before first use")
	}
	check("first use fetches", es256(t, "k1", k1, jwtClaims()), nil)
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}

	// The provider rotates to k2. A token naming k2 right away is refused
	// without a fetch (the minimum interval), then accepted once it passed.
	both, _ := json.Marshal(map[string]any{"keys": []any{
		json.RawMessage(strings.TrimSuffix(strings.TrimPrefix(string(jwksOf("k1", k1)), `{"keys":[`), `]}`)),
		json.RawMessage(strings.TrimSuffix(strings.TrimPrefix(string(jwksOf("k2", k2)), `{"keys":[`), `]}`)),
	}})
	publish(both, http.StatusOK)
	tok2 := es256(t, "k2", k2, jwtClaims())
	check("unknown kid within the minimum interval", tok2, jwt.ErrUnknownKey)
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want still 1", n)
	}
	advance(jwksMinInterval)
	check("unknown kid after the minimum interval", tok2, nil)
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	for i := 0; i < 5; i++ {
		check("known kid", tok2, nil)
		check("unknown kid again, rate-limited", es256(t, "k9", k2, jwtClaims()), jwt.ErrUnknownKey)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want still 2", n)
	}

	// A failing provider keeps the old keys.
	publish([]byte("oops"), http.StatusInternalServerError)
	advance(2 * time.Minute)
	check("stale keys, refresh in the background", tok2, nil)
	waitFor(t, func() bool { return !rk.fetching() && fetches.Load() == 3 })
	check("after a failed refresh", es256(t, "k1", k1, jwtClaims("sub", "x")), nil)

	// The background refresh picks up a removal of k1: its cached tokens
	// stop working.
	publish(jwksOf("k2", k2), http.StatusOK)
	advance(2 * time.Minute)
	rk.Current()
	waitFor(t, func() bool { return !rk.fetching() && fetches.Load() == 4 })
	check("k1 removed", es256(t, "k1", k1, jwtClaims("sub", "x")), jwt.ErrUnknownKey)
	check("k2 still there", tok2, nil)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemoteKeysUnavailable: with the provider down from the start, tokens
// are refused and fetches are rate-limited.
func TestRemoteKeysUnavailable(t *testing.T) {
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	rk := NewRemoteKeys(srv.URL, srv.Client(), time.Minute, nil)
	v := newJWTVerifier(*jwtOptions(rk, func() time.Time { return jwtNow }))
	tok := es256(t, "k1", jwtSigner(), jwtClaims())
	for i := 0; i < 3; i++ {
		if _, err := v.verify(tok, sha256.Sum256([]byte(tok))); !errors.Is(err, jwt.ErrUnknownKey) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	k := jwtSigner()
	for _, bc := range []struct {
		name    string
		prepare func(r *http.Request)
	}{
		{"header", func(r *http.Request) { r.Header.Set("X-User", "carol") }},
		{"basic", func(r *http.Request) { r.SetBasicAuth("alice", "alice-pw") }},
		{"token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+apiToken) }},
		{"jwt", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+es256(b, "k1", k, jwtClaims())) }},
		{"certificate", func(r *http.Request) { r.TLS = verified(testCerts().alice) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := fullAuthenticator(b, CertCN, CertOU)
			r := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			r.RemoteAddr = "127.0.0.1:1"
			bc.prepare(r)
			if _, err := a.Authenticate(r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
