package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// MinRSABits is the smallest RSA modulus a key set may hold.
const MinRSABits = 2048

// Key is one verification key of a set.
type Key struct {
	// ID is the key's kid ("" when it has none).
	ID string
	// Alg restricts the key to one algorithm ("" = any that fits).
	Alg string
	// Public is an *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Public crypto.PublicKey
}

// KeySet is a parsed JSON Web Key Set. It is immutable.
type KeySet struct {
	keys []Key
}

// jwk is a JSON Web Key as far as verification needs it.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	// RSA
	N string `json:"n"`
	E string `json:"e"`
	// EC and OKP
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// Private parts: a set holding them is a mistake worth refusing.
	D string `json:"d"`
}

// ParseKeySet parses a JWKS document ({"keys": [...]}). Keys that cannot
// verify signatures here (encryption keys, symmetric keys, unknown types and
// curves, algorithms not supported) are skipped and described in skipped;
// a key of a supported type that is malformed is an error, as is a set
// with no usable key.
func ParseKeySet(data []byte) (ks *KeySet, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not valid JSON: %v", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New(`JWKS has no "keys" array`)
	}
	ks = &KeySet{}
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, nil, fmt.Errorf("JWKS key #%d: %v", i+1, err)
		}
		name := fmt.Sprintf("key #%d", i+1)
		if k.Kid != "" {
			name = fmt.Sprintf("key %q", k.Kid)
		}
		if reason := unusable(k); reason != "" {
			skipped = append(skipped, name+": "+reason)
			continue
		}
		pub, err := k.public()
		if err != nil {
			return nil, nil, fmt.Errorf("JWKS %s: %v", name, err)
		}
		if k.Alg != "" && !KeyFits(k.Alg, pub) {
			return nil, nil, fmt.Errorf("JWKS %s: alg %s does not fit a %s key", name, k.Alg, k.Kty)
		}
		ks.keys = append(ks.keys, Key{ID: k.Kid, Alg: k.Alg, Public: pub})
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("JWKS holds no signature verification key")
	}
	return ks, skipped, nil
}

// unusable says why a key is not for verifying signatures here, or "".
func unusable(k jwk) string {
	switch {
	case k.Use != "" && k.Use != "sig":
		return fmt.Sprintf("use %q", k.Use)
	case len(k.KeyOps) > 0 && !slices.Contains(k.KeyOps, "verify"):
		return "key_ops without verify"
	case k.Alg != "" && !Supported(k.Alg):
		return fmt.Sprintf("algorithm %q not supported", k.Alg)
	}
	switch k.Kty {
	case "RSA":
	case "EC":
		if curve(k.Crv) == nil {
			return fmt.Sprintf("curve %q not supported", k.Crv)
		}
	case "OKP":
		if k.Crv != "Ed25519" {
			return fmt.Sprintf("curve %q not supported", k.Crv)
		}
	default:
		return fmt.Sprintf("key type %q not supported", k.Kty)
	}
	return ""
}

func curve(name string) elliptic.Curve {
	switch name {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

func (k jwk) public() (crypto.PublicKey, error) {
	if k.D != "" {
		return nil, errors.New("holds a private key; publish only public keys")
	}
	switch k.Kty {
	case "RSA":
		n, err := b64.DecodeString(k.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("n is not base64url")
		}
		e, err := b64.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("e is not a base64url integer of at most 32 bits")
		}
		exp := new(big.Int).SetBytes(e)
		if exp.Int64() < 3 || exp.Bit(0) == 0 {
			return nil, errors.New("e must be odd and at least 3")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
		if pub.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("RSA modulus of %d bits; at least %d required", pub.N.BitLen(), MinRSABits)
		}
		return pub, nil
	case "EC":
		c := curve(k.Crv)
		size := (c.Params().BitSize + 7) / 8
		x, errX := b64.DecodeString(k.X)
		y, errY := b64.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("x and y must be base64url of %d bytes each", size)
		}
		// The uncompressed point form; the parser checks that the point
		// lies on the curve.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, point)
		if err != nil {
			return nil, fmt.Errorf("invalid %s point: %v", k.Crv, err)
		}
		return pub, nil
	case "OKP":
		x, err := b64.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("x must be base64url of %d bytes", ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("key type %q not supported", k.Kty)
}

// Len is the number of usable keys.
func (ks *KeySet) Len() int { return len(ks.keys) }

// Find returns the key for a token header. With a kid, the key must have
// that kid; without one, the set must hold exactly one key that fits alg,
// so that a token cannot choose among keys. In both cases the key must fit
// alg and its own alg, if any, must be alg.
func (ks *KeySet) Find(kid, alg string) (crypto.PublicKey, error) {
	var found []crypto.PublicKey
	for _, k := range ks.keys {
		if kid != "" && k.ID != kid {
			continue
		}
		if (k.Alg != "" && k.Alg != alg) || !KeyFits(alg, k.Public) {
			continue
		}
		found = append(found, k.Public)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case kid != "" && len(found) == 0:
		return nil, fmt.Errorf("%w: no %s key with kid %q", ErrUnknownKey, alg, kid)
	case kid != "":
		return nil, fmt.Errorf("%w: several %s keys with kid %q", ErrUnknownKey, alg, kid)
	case len(found) == 0:
		return nil, fmt.Errorf("%w: no %s key", ErrUnknownKey, alg)
	}
	return nil, fmt.Errorf("%w: token has no kid and the key set holds %d %s keys", ErrUnknownKey, len(found), alg)
}
