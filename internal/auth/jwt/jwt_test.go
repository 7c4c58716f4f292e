package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// testKeys are generated once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return map[string]crypto.Signer{
		"rsa1": rsa1, "rsa2": rsa2, "ec256": ec256, "ec384": ec384, "ec521": ec521, "ed": ed,
		"other256": other256,
	}
})

func b64s(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf renders the public half of a test key.
func jwkOf(kid, alg string, k crypto.Signer) map[string]any {
	m := map[string]any{"kid": kid}
	if alg != "" {
		m["alg"] = alg
	}
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64s(pub.N.Bytes()), b64s(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		raw, _ := pub.Bytes()
		m["kty"], m["crv"] = "EC", pub.Curve.Params().Name
		m["x"], m["y"] = b64s(raw[1:1+size]), b64s(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64s(pub)
	}
	return m
}

func testKeySet(t *testing.T) *KeySet {
	t.Helper()
	k := testKeys()
	doc := map[string]any{"keys": []any{
		jwkOf("rsa1", "", k["rsa1"]),
		jwkOf("ps", "PS256", k["rsa2"]),
		jwkOf("ec256", "ES256", k["ec256"]),
		jwkOf("ec384", "", k["ec384"]),
		jwkOf("ec521", "", k["ec521"]),
		jwkOf("ed", "", k["ed"]),
		map[string]any{"kty": "oct", "kid": "sym", "k": b64s([]byte("secret"))},
		jwkOf("enc", "", k["other256"]),
	}}
	doc["keys"].([]any)[7].(map[string]any)["use"] = "enc"
	data, _ := json.Marshal(doc)
	ks, skipped, err := ParseKeySet(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 2 || ks.Len() != 6 {
		t.Fatalf("skipped %v, %d keys", skipped, ks.Len())
	}
	return ks
}

// sign builds a compact JWS of header and claims with key (nil: empty
// signature).
func sign(t *testing.T, header, claims map[string]any, key crypto.Signer) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64s(h) + "." + b64s(c)
	alg, _ := header["alg"].(string)
	return input + "." + b64s(signature(t, alg, input, key))
}

func signature(t *testing.T, alg, input string, key crypto.Signer) []byte {
	t.Helper()
	if key == nil {
		return nil
	}
	hash := crypto.SHA256
	switch alg[len(alg)-3:] {
	case "384":
		hash = crypto.SHA384
	case "512":
		hash = crypto.SHA512
	}
	var digest []byte
	if alg != "EdDSA" {
		h := hash.New()
		h.Write([]byte(input))
		digest = h.Sum(nil)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if alg[0] == 'P' {
			s, err := rsa.SignPSS(rand.Reader, k, hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s, err := rsa.SignPKCS1v15(rand.Reader, k, hash, digest)
		if err != nil {
			t.Fatal(err)
		}
		return s
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case ed25519.PrivateKey:
		return ed25519.Sign(k, []byte(input))
	}
	t.Fatalf("unknown key %T", key)
	return nil
}

var testNow = time.Unix(1_700_000_000, 0)

func validation() Validation {
	return Validation{
		Issuer:    "https://idp.example",
		Audiences: []string{"promgate", "grafana"},
		Leeway:    30 * time.Second,
		Now:       func() time.Time { return testNow },
	}
}

func goodClaims() map[string]any {
	return map[string]any{
		"iss": "https://idp.example", "aud": "promgate", "sub": "alice",
		"exp": testNow.Unix() + 300, "iat": testNow.Unix() - 10, "nbf": testNow.Unix() - 10,
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func hdr(alg, kid string) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

func TestVerify(t *testing.T) {
	k := testKeys()
	ks := testKeySet(t)
	rsaPub := k["rsa1"].Public().(*rsa.PublicKey)

	// The "key confusion" token: HS256 keyed with the RSA public key's
	// bytes, which a naive verifier would use as the HMAC secret.
	confusion := func() string {
		h, _ := json.Marshal(hdr("HS256", "rsa1"))
		c, _ := json.Marshal(goodClaims())
		in := b64s(h) + "." + b64s(c)
		m := hmac.New(sha256.New, rsaPub.N.Bytes())
		m.Write([]byte(in))
		return in + "." + b64s(m.Sum(nil))
	}()
	tampered := func() string {
		tok := sign(t, hdr("RS256", "rsa1"), goodClaims(), k["rsa1"])
		parts := strings.Split(tok, ".")
		c, _ := json.Marshal(with(goodClaims(), "sub", "root"))
		return parts[0] + "." + b64s(c) + "." + parts[2]
	}()
	derES256 := func() string {
		h, _ := json.Marshal(hdr("ES256", "ec256"))
		c, _ := json.Marshal(goodClaims())
		in := b64s(h) + "." + b64s(c)
		d := sha256.Sum256([]byte(in))
		sig, _ := ecdsa.SignASN1(rand.Reader, k["ec256"].(*ecdsa.PrivateKey), d[:])
		return in + "." + b64s(sig)
	}()

	for _, tc := range []struct {
		name  string
		token string
		v     func(*Validation)
		want  error // nil = valid
	}{
		{name: "RS256", token: sign(t, hdr("RS256", "rsa1"), goodClaims(), k["rsa1"])},
		{name: "RS384", token: sign(t, hdr("RS384", "rsa1"), goodClaims(), k["rsa1"])},
		{name: "RS512", token: sign(t, hdr("RS512", "rsa1"), goodClaims(), k["rsa1"])},
		{name: "PS256", token: sign(t, hdr("PS256", "ps"), goodClaims(), k["rsa2"])},
		{name: "PS384 with a PS256-only key", token: sign(t, hdr("PS384", "ps"), goodClaims(), k["rsa2"]), want: ErrUnknownKey},
		{name: "PS512 with an unrestricted RSA key", token: sign(t, hdr("PS512", "rsa1"), goodClaims(), k["rsa1"])},
		{name: "ES256", token: sign(t, hdr("ES256", "ec256"), goodClaims(), k["ec256"])},
		{name: "ES384", token: sign(t, hdr("ES384", "ec384"), goodClaims(), k["ec384"])},
		{name: "ES512", token: sign(t, hdr("ES512", "ec521"), goodClaims(), k["ec521"])},
		{name: "EdDSA", token: sign(t, hdr("EdDSA", "ed"), goodClaims(), k["ed"])},
		{name: "no kid, one fitting key", token: sign(t, hdr("ES384", ""), goodClaims(), k["ec384"])},
		{name: "no kid, the other RSA key is PS256 only", token: sign(t, hdr("RS256", ""), goodClaims(), k["rsa1"])},
		{name: "no kid, several fitting keys", token: sign(t, hdr("PS256", ""), goodClaims(), k["rsa2"]), want: ErrUnknownKey},
		{name: "aud array", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "aud", []string{"other", "grafana"}), k["rsa1"])},
		{name: "expired within leeway", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", testNow.Unix()-20), k["rsa1"])},
		{name: "fractional exp", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", float64(testNow.Unix())+100.5), k["rsa1"])},
		{name: "no nbf and no iat", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "nbf", nil, "iat", nil), k["rsa1"])},

		{name: "alg none", token: sign(t, hdr("none", "rsa1"), goodClaims(), nil), want: ErrAlgorithm},
		{name: "alg None", token: sign(t, hdr("None", ""), goodClaims(), nil), want: ErrAlgorithm},
		{name: "alg missing", token: sign(t, map[string]any{"typ": "JWT"}, goodClaims(), nil), want: ErrAlgorithm},
		{name: "HS256 keyed with the RSA public key", token: confusion, want: ErrAlgorithm},
		{name: "algorithm not in the allowed list", token: sign(t, hdr("RS256", "rsa1"), goodClaims(), k["rsa1"]),
			v: func(v *Validation) { v.Algorithms = []string{"ES256"} }, want: ErrAlgorithm},
		{name: "unknown kid", token: sign(t, hdr("RS256", "nope"), goodClaims(), k["rsa1"]), want: ErrUnknownKey},
		{name: "ES256 naming an RSA key", token: sign(t, hdr("ES256", "rsa1"), goodClaims(), k["ec256"]), want: ErrUnknownKey},
		{name: "ES256 naming a P-384 key", token: sign(t, hdr("ES256", "ec384"), goodClaims(), k["ec256"]), want: ErrUnknownKey},
		{name: "RS256 naming a PS256 key", token: sign(t, hdr("RS256", "ps"), goodClaims(), k["rsa2"]), want: ErrUnknownKey},
		{name: "encryption key", token: sign(t, hdr("ES256", "enc"), goodClaims(), k["other256"]), want: ErrUnknownKey},
		{name: "symmetric key", token: sign(t, hdr("RS256", "sym"), goodClaims(), k["rsa1"]), want: ErrUnknownKey},
		{name: "signed by another key", token: sign(t, hdr("RS256", "rsa1"), goodClaims(), k["rsa2"]), want: ErrSignature},
		{name: "tampered payload", token: tampered, want: ErrSignature},
		{name: "empty signature", token: sign(t, hdr("RS256", "rsa1"), goodClaims(), nil), want: ErrSignature},
		{name: "ES256 signature in DER", token: derES256, want: ErrSignature},
		{name: "EdDSA by another key", token: sign(t, hdr("EdDSA", "ed"), goodClaims(), ed25519.NewKeyFromSeed(make([]byte, 32))), want: ErrSignature},

		{name: "expired", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", testNow.Unix()-31), k["rsa1"]), want: ErrExpired},
		{name: "no exp", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", nil), k["rsa1"]), want: ErrClaims},
		{name: "exp as string", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", "9999999999"), k["rsa1"]), want: ErrClaims},
		{name: "exp negative", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "exp", -1), k["rsa1"]), want: ErrClaims},
		{name: "nbf in the future", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "nbf", testNow.Unix()+60), k["rsa1"]), want: ErrNotYetValid},
		{name: "iat in the future", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "iat", testNow.Unix()+60), k["rsa1"]), want: ErrNotYetValid},
		{name: "wrong issuer", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "iss", "https://evil.example"), k["rsa1"]), want: ErrIssuer},
		{name: "no issuer", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "iss", nil), k["rsa1"]), want: ErrIssuer},
		{name: "wrong audience", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "aud", "other"), k["rsa1"]), want: ErrAudience},
		{name: "audience array without ours", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "aud", []string{"a", "b"}), k["rsa1"]), want: ErrAudience},
		{name: "no audience", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "aud", nil), k["rsa1"]), want: ErrAudience},
		{name: "audience a number", token: sign(t, hdr("RS256", "rsa1"), with(goodClaims(), "aud", 7), k["rsa1"]), want: ErrClaims},

		{name: "crit header", token: sign(t, with(hdr("RS256", "rsa1"), "crit", []string{"exp"}), goodClaims(), k["rsa1"]), want: ErrMalformed},
		{name: "kid not a string", token: sign(t, with(hdr("RS256", ""), "kid", 5), goodClaims(), k["rsa1"]), want: ErrMalformed},
		{name: "two parts", token: "eyJhbGciOiJSUzI1NiJ9.e30", want: ErrMalformed},
		{name: "JWE, five parts", token: "a.b.c.d.e", want: ErrMalformed},
		{name: "empty", token: "", want: ErrMalformed},
		{name: "padded base64", token: b64s([]byte(`{"alg":"RS256","kid":"rsa1"}`)) + "=.e30.AA", want: ErrMalformed},
		{name: "header not JSON", token: b64s([]byte("alg")) + ".e30.AA", want: ErrMalformed},
		{name: "header a JSON array", token: b64s([]byte(`["RS256"]`)) + ".e30.AA", want: ErrMalformed},
		{name: "too long", token: strings.Repeat("a", MaxTokenBytes+1), want: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := validation()
			if tc.v != nil {
				tc.v(&v)
			}
			tok, err := Verify(tc.token, ks.Find, v)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if sub, _ := tok.Claims.String("sub"); sub != "alice" {
					t.Errorf("sub = %q", sub)
				}
				if tok.Expiry.IsZero() {
					t.Error("no expiry")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tok != nil {
				t.Error("token returned with an error")
			}
		})
	}
}

// TestPayloadNotObject needs a valid signature over a non-object payload.
func TestPayloadNotObject(t *testing.T) {
	k := testKeys()["ed"]
	ks := testKeySet(t)
	for _, payload := range []string{`[]`, `"x"`, `null`, `{} {}`, `{"a":1`} {
		h, _ := json.Marshal(hdr("EdDSA", "ed"))
		in := b64s(h) + "." + b64s([]byte(payload))
		tok := in + "." + b64s(ed25519.Sign(k.(ed25519.PrivateKey), []byte(in)))
		if _, err := Verify(tok, ks.Find, validation()); !errors.Is(err, ErrMalformed) {
			t.Errorf("payload %s: err = %v, want malformed", payload, err)
		}
	}
}

func TestParseKeySet(t *testing.T) {
	k := testKeys()
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	offCurve := jwkOf("ec", "", k["ec256"])
	offCurve["y"] = offCurve["x"]
	private := jwkOf("ec", "", k["ec256"])
	private["d"] = b64s([]byte("0123456789abcdef0123456789abcdef"))
	shortX := jwkOf("ec", "", k["ec256"])
	shortX["x"] = b64s([]byte("short"))
	evenE := jwkOf("rsa", "", k["rsa1"])
	evenE["e"] = b64s([]byte{2})

	for _, tc := range []struct {
		name    string
		doc     any
		keys    int
		skipped int
		err     string
	}{
		{name: "good", doc: map[string]any{"keys": []any{jwkOf("a", "RS256", k["rsa1"]), jwkOf("b", "", k["ed"])}}, keys: 2},
		{name: "skips what does not verify", doc: map[string]any{"keys": []any{
			jwkOf("a", "", k["rsa1"]),
			map[string]any{"kty": "oct", "k": "c2VjcmV0"},
			map[string]any{"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
			map[string]any{"kty": "OKP", "crv": "X25519", "x": "AA"},
			with(jwkOf("c", "", k["rsa2"]), "use", "enc"),
			with(jwkOf("d", "", k["rsa2"]), "key_ops", []string{"encrypt"}),
			with(jwkOf("e", "", k["rsa2"]), "alg", "RSA-OAEP"),
		}}, keys: 1, skipped: 6},
		{name: "not JSON", doc: "nope", err: "not valid JSON"},
		{name: "no keys array", doc: map[string]any{"key": []any{}}, err: `no "keys" array`},
		{name: "only unusable keys", doc: map[string]any{"keys": []any{map[string]any{"kty": "oct", "k": "c2VjcmV0"}}}, err: "no signature verification key", skipped: 1},
		{name: "small RSA", doc: map[string]any{"keys": []any{jwkOf("s", "", rsaSmall)}}, err: "RSA modulus of 1024 bits"},
		{name: "even exponent", doc: map[string]any{"keys": []any{evenE}}, err: "e must be odd"},
		{name: "point off the curve", doc: map[string]any{"keys": []any{offCurve}}, err: "invalid P-256 point"},
		{name: "short coordinate", doc: map[string]any{"keys": []any{shortX}}, err: "32 bytes each"},
		{name: "private key", doc: map[string]any{"keys": []any{private}}, err: "private key"},
		{name: "alg does not fit", doc: map[string]any{"keys": []any{jwkOf("x", "ES256", k["rsa1"])}}, err: "alg ES256 does not fit"},
		{name: "ES256 on P-384", doc: map[string]any{"keys": []any{jwkOf("x", "ES256", k["ec384"])}}, err: "alg ES256 does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var data []byte
			if s, ok := tc.doc.(string); ok {
				data = []byte(s)
			} else {
				data, _ = json.Marshal(tc.doc)
			}
			ks, skipped, err := ParseKeySet(data)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ks.Len() != tc.keys || len(skipped) != tc.skipped {
				t.Errorf("%d keys, skipped %v; want %d and %d", ks.Len(), skipped, tc.keys, tc.skipped)
			}
		})
	}
}

func TestClaimsStrings(t *testing.T) {
	c := Claims{"s": "a", "l": []any{"a", "b"}, "bad": []any{"a", json.Number("1")}, "n": json.Number("1")}
	for _, tc := range []struct {
		name string
		want []string
		err  bool
	}{
		{"s", []string{"a"}, false},
		{"l", []string{"a", "b"}, false},
		{"absent", nil, false},
		{"bad", nil, true},
		{"n", nil, true},
	} {
		got, err := c.Strings(tc.name)
		if (err != nil) != tc.err || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Strings(%s) = %v, %v", tc.name, got, err)
		}
	}
}
