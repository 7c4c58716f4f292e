// Package jwt verifies JSON Web Tokens (RFC 7519) signed with asymmetric
// keys from a JSON Web Key Set (RFC 7517), as issued by OpenID Connect
// providers.
//
// It is a small standard-library implementation rather than a general JOSE
// library, because promgate needs only one narrow operation: is this compact
// JWS, signed by one of these public keys, a currently valid token for this
// issuer and audience? Keeping to that operation removes the classic JWT
// pitfalls by construction:
//
//   - Only the asymmetric algorithms RS256/384/512, PS256/384/512,
//     ES256/384/512 and EdDSA (Ed25519) exist here. "none" and the HMAC
//     algorithms are unknown names and refused, so neither an unsigned token
//     nor a public key reused as an HMAC secret can pass.
//   - The algorithm a token names must be in the verifier's allowed list and
//     must fit the key: RSA keys for RS and PS, an EC key on the algorithm's
//     own curve for ES, an Ed25519 key for EdDSA, and a key's own "alg", when
//     it has one, must equal the token's.
//   - Keys come only from the configured key set. Header parameters that
//     point elsewhere (jku, x5u, jwk, x5c) are ignored, never fetched or used.
//   - A "crit" header is refused: no extension is understood.
//   - Claims are read only after the signature verified, and exp is
//     required.
//
// Only the compact serialization (three base64url parts) is accepted; JWE
// (five parts) and the JSON serialization are refused as malformed.
//
// It is kept rather than github.com/golang-jwt/jwt/v5 because it is
// stricter where that library, carefully configured, accepts: PSS salts
// other than the hash length, crit headers, iat in the future and
// non-canonical base64url (TestStricterThanGolangJWT records each case).
package jwt

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// Errors returned by Verify, wrapped with details. Callers tell forged or
// garbled tokens (ErrMalformed, ErrAlgorithm, ErrSignature) from genuine
// tokens that are not valid here (the others) with errors.Is.
var (
	ErrMalformed   = errors.New("malformed token")
	ErrAlgorithm   = errors.New("algorithm not allowed")
	ErrUnknownKey  = errors.New("no matching key")
	ErrSignature   = errors.New("invalid signature")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not valid yet")
	ErrIssuer      = errors.New("wrong issuer")
	ErrAudience    = errors.New("wrong audience")
	ErrClaims      = errors.New("invalid claims")
)

// MaxTokenBytes bounds the size of a token Verify reads.
const MaxTokenBytes = 16 << 10

// Algorithms lists the supported signature algorithms, the default allowed
// set.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Supported reports whether alg is a supported algorithm name.
func Supported(alg string) bool { return slices.Contains(Algorithms, alg) }

// Validation says what a valid token looks like.
type Validation struct {
	// Issuer must equal the iss claim.
	Issuer string
	// Audiences: the aud claim (a string or an array) must contain at
	// least one of them.
	Audiences []string
	// Algorithms allowed; empty means all of Algorithms.
	Algorithms []string
	// Leeway tolerates clock skew in exp, nbf and iat.
	Leeway time.Duration
	// Now is the current time; nil means time.Now.
	Now func() time.Time
}

// KeyFinder returns the key that verifies a token whose header names kid
// (possibly "") and alg. It returns an error wrapping ErrUnknownKey when
// there is none.
type KeyFinder func(kid, alg string) (crypto.PublicKey, error)

// Claims are a verified token's claims. Numbers are json.Number.
type Claims map[string]any

// Token is a verified token.
type Token struct {
	Claims Claims
	// Expiry is the exp claim.
	Expiry time.Time
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

var b64 = base64.RawURLEncoding.Strict()

// Verify checks raw's signature with the key that find returns, then its
// claims against v, and returns the verified token.
func Verify(raw string, find KeyFinder, v Validation) (*Token, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want three dot-separated parts, got %d", ErrMalformed, len(parts))
	}
	hdrBytes, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(hdrBytes, &fields); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if _, ok := fields["crit"]; ok {
		return nil, fmt.Errorf("%w: critical header extensions are not supported", ErrMalformed)
	}
	var h header
	if err := json.Unmarshal(hdrBytes, &h); err != nil {
		return nil, fmt.Errorf("%w: header: alg and kid must be strings", ErrMalformed)
	}
	allowed := v.Algorithms
	if len(allowed) == 0 {
		allowed = Algorithms
	}
	// Exact, case-sensitive names: "none", "None", "HS256" are all absent.
	if !Supported(h.Alg) || !slices.Contains(allowed, h.Alg) {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, h.Alg)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	key, err := find(h.Kid, h.Alg)
	if err != nil {
		return nil, err
	}
	signed := raw[:len(parts[0])+1+len(parts[1])]
	if err := verifySignature(h.Alg, key, []byte(signed), sig); err != nil {
		return nil, err
	}

	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims Claims
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	exp, err := validate(claims, v)
	if err != nil {
		return nil, err
	}
	return &Token{Claims: claims, Expiry: exp}, nil
}

// KeyFits reports whether key can verify alg.
func KeyFits(alg string, key crypto.PublicKey) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve.Params().Name == "P-256"
		case "ES384":
			return k.Curve.Params().Name == "P-384"
		case "ES512":
			return k.Curve.Params().Name == "P-521"
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

func hashOf(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

func verifySignature(alg string, key crypto.PublicKey, signed, sig []byte) error {
	if !KeyFits(alg, key) {
		return fmt.Errorf("%w: key does not fit %s", ErrUnknownKey, alg)
	}
	var ok bool
	switch k := key.(type) {
	case *rsa.PublicKey:
		h := hashOf(alg).New()
		h.Write(signed)
		digest := h.Sum(nil)
		if alg[0] == 'P' {
			// RFC 7518 3.5: the salt is as long as the hash.
			ok = rsa.VerifyPSS(k, hashOf(alg), digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(k, hashOf(alg), digest, sig) == nil
		}
	case *ecdsa.PublicKey:
		// RFC 7518 3.4: R and S, each padded to the curve's size.
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("%w: %s signature of %d bytes", ErrSignature, alg, len(sig))
		}
		h := hashOf(alg).New()
		h.Write(signed)
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		ok = ecdsa.Verify(k, h.Sum(nil), r, s)
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, signed, sig)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// validate checks the registered claims and returns the expiry.
func validate(c Claims, v Validation) (time.Time, error) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	exp, present, err := c.time("exp")
	switch {
	case err != nil:
		return time.Time{}, err
	case !present:
		return time.Time{}, fmt.Errorf("%w: exp is required", ErrClaims)
	case now.After(exp.Add(v.Leeway)):
		return time.Time{}, fmt.Errorf("%w at %s", ErrExpired, exp.UTC().Format(time.RFC3339))
	}
	if nbf, present, err := c.time("nbf"); err != nil {
		return time.Time{}, err
	} else if present && now.Add(v.Leeway).Before(nbf) {
		return time.Time{}, fmt.Errorf("%w: nbf is %s", ErrNotYetValid, nbf.UTC().Format(time.RFC3339))
	}
	if iat, present, err := c.time("iat"); err != nil {
		return time.Time{}, err
	} else if present && now.Add(v.Leeway).Before(iat) {
		return time.Time{}, fmt.Errorf("%w: issued in the future (iat %s)", ErrNotYetValid, iat.UTC().Format(time.RFC3339))
	}

	iss, _ := c["iss"].(string)
	if iss != v.Issuer {
		return time.Time{}, fmt.Errorf("%w %q", ErrIssuer, iss)
	}
	auds, err := c.Strings("aud")
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: aud: %v", ErrClaims, err)
	}
	match := false
	for _, a := range auds {
		if slices.Contains(v.Audiences, a) {
			match = true
			break
		}
	}
	if !match {
		return time.Time{}, fmt.Errorf("%w %q", ErrAudience, auds)
	}
	return exp, nil
}

// time reads a NumericDate claim.
func (c Claims) time(name string) (time.Time, bool, error) {
	raw, present := c[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, true, fmt.Errorf("%w: %s is not a number", ErrClaims, name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, true, fmt.Errorf("%w: %s is not a valid time", ErrClaims, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// String returns a string claim; ok is false when it is absent, not a
// string, or empty.
func (c Claims) String(name string) (string, bool) {
	s, ok := c[name].(string)
	return s, ok && s != ""
}

// Strings returns a claim that is a string or an array of strings; an
// absent claim is an empty list.
func (c Claims) Strings(name string) ([]string, error) {
	switch v := c[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s holds a non-string", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s is neither a string nor an array of strings", name)
}
