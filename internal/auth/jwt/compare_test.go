package jwt

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
)

// TestStricterThanGolangJWT verifies the same tokens with this package and
// with github.com/golang-jwt/jwt/v5 configured as a careful user would
// (the asymmetric algorithms only, issuer, audience, leeway, exp
// required, the key found by kid in the same key set). It records why
// promgate keeps its own verifier: every token below is refused here; the
// rows marked lenient are accepted by golang-jwt.
func TestStricterThanGolangJWT(t *testing.T) {
	ks := testKeySet(t)
	k := testKeys()
	v := validation()

	pss := func(salt int) string {
		h, _ := json.Marshal(hdr("PS256", "ps"))
		c, _ := json.Marshal(goodClaims())
		in := b64s(h) + "." + b64s(c)
		d := sha256.Sum256([]byte(in))
		s, err := rsa.SignPSS(rand.Reader, k["rsa2"].(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		return in + "." + b64s(s)
	}
	// A signature whose base64url has unused trailing bits set: the same
	// bytes, a different token string.
	nonCanonical := func() string {
		tok := sign(t, hdr("ES256", "ec256"), goodClaims(), k["ec256"])
		last := tok[len(tok)-1]
		i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
		// 64 bytes end in 4 significant bits: the next two values of the
		// last character decode the same.
		return tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i^1])
	}
	hs256 := func() string {
		pub, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": "rsa1"})
		c, _ := json.Marshal(goodClaims())
		in := b64s(pub) + "." + b64s(c)
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write([]byte(in))
		return in + "." + b64s(m.Sum(nil))
	}

	for _, tc := range []struct {
		name    string
		token   string
		lenient bool // golang-jwt accepts it
	}{
		{"PSS with a salt shorter than the hash (RFC 7518 3.5)", pss(0), true},
		{"PSS with the longest salt", pss(rsa.PSSSaltLengthAuto), true},
		{"a crit header (RFC 7515 4.1.11: must be understood)", sign(t, with(hdr("RS256", "rsa1"), "crit", []string{"x-unknown"}), with(goodClaims(), "x-unknown", 1), k["rsa1"]), true},
		{"iat in the future", sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "iat", testNow.Unix()+3600), k["rsa1"]), true},
		{"non-canonical base64url in the signature", nonCanonical(), true},
		{"alg none", sign(t, hdr("none", ""), goodClaims(), nil), false},
		{"HS256 (an HMAC over a shared secret)", hs256(), false},
		{"RS256 naming an EC key", sign(t, hdr("RS256", "ec256"), goodClaims(), k["rsa1"]), false},
		{"no exp", sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", nil), k["rsa1"]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.token, ks.Find, v); err == nil {
				t.Error("promgate accepted it")
			}
			p := gjwt.NewParser(
				gjwt.WithValidMethods(Algorithms),
				gjwt.WithIssuer(v.Issuer),
				gjwt.WithAudience(v.Audiences[0]),
				gjwt.WithLeeway(v.Leeway),
				gjwt.WithExpirationRequired(),
				gjwt.WithTimeFunc(func() time.Time { return testNow }),
			)
			_, err := p.Parse(tc.token, func(tok *gjwt.Token) (any, error) {
				kid, _ := tok.Header["kid"].(string)
				alg, _ := tok.Header["alg"].(string)
				return ks.Find(kid, alg)
			})
			if accepted := err == nil; accepted != tc.lenient {
				t.Errorf("golang-jwt accepted: %v, recorded as %v (err %v)", accepted, tc.lenient, err)
			}
		})
	}
}
