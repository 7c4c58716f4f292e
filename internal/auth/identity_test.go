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
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/apierror"
)

// certNamed returns a verified TLS state for a certificate whose subject
// has the common name cn and the organizational units ous.
func certNamed(t *testing.T, cn string, ous ...string) *tls.ConnectionState {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf}}}
}

// TestIdentityControlCharacters pins that no method can produce a user or
// group name holding control characters or invalid UTF-8: each is 401,
// and the same method with a plain name passes.
func TestIdentityControlCharacters(t *testing.T) {
	k := jwtSigner()
	a := New(Options{
		BasicAuthUsers: map[string]string{
			"alice":    mustHash(t, "pw", bcrypt.MinCost),
			"ev\x00il": mustHash(t, "pw", bcrypt.MinCost),
		},
		HeaderName:        "X-User",
		TrustedSources:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		ClientCertificate: &CertificateOptions{UserFrom: "cn", GroupsFrom: "ou"},
		Tokens: map[[32]byte]string{
			sha256.Sum256([]byte("good-token-0123456789")): "robot",
			sha256.Sum256([]byte("bad-token-0123456789")):  "robot\n",
		},
		JWT: jwtOptions(StaticKeys{KeySet: testKeySet(t)}, func() time.Time { return jwtNow }),
	})
	basic := func(u string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":pw")) }
	for _, tc := range []struct {
		name   string
		header map[string]string
		tls    *tls.ConnectionState
		ok     bool
	}{
		{"trusted header, plain", map[string]string{"X-User": "carol"}, nil, true},
		{"trusted header, tab (net/http lets it through)", map[string]string{"X-User": "car\tol"}, nil, false},
		{"trusted header, invalid UTF-8", map[string]string{"X-User": "car\xffol"}, nil, false},
		{"trusted header, C1 control", map[string]string{"X-User": "car\u0085ol"}, nil, false},
		{"basic, plain", map[string]string{"Authorization": basic("alice")}, nil, true},
		{"basic, NUL in a configured name", map[string]string{"Authorization": basic("ev\x00il")}, nil, false},
		{"token, plain", map[string]string{"Authorization": "Bearer good-token-0123456789"}, nil, true},
		{"token, newline in its user", map[string]string{"Authorization": "Bearer bad-token-0123456789"}, nil, false},
		{"jwt, plain", map[string]string{"Authorization": "Bearer " + es256(t, "k1", k, jwtClaims())}, nil, true},
		{"jwt, NUL in the user claim", map[string]string{"Authorization": "Bearer " + es256(t, "k1", k, jwtClaims("name", "a\x00b"))}, nil, false},
		{"jwt, control character in a group", map[string]string{"Authorization": "Bearer " + es256(t, "k1", k, jwtClaims("groups", []string{"ops", "te\x1bam"}))}, nil, false},
		{"certificate, plain", nil, certNamed(t, "dave", "ops"), true},
		{"certificate, NUL in the common name", nil, certNamed(t, "da\x00ve"), false},
		{"certificate, control character in a unit", nil, certNamed(t, "dave", "o\x07ps"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "127.0.0.1:1"
			r.TLS = tc.tls
			for k, v := range tc.header {
				r.Header[k] = []string{v}
			}
			id, err := a.Authenticate(r)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *apierror.Error
			if !errors.As(err, &ae) || ae.Status() != http.StatusUnauthorized {
				t.Fatalf("got identity %+v, err %v; want 401", id, err)
			}
		})
	}
}
