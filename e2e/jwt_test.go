package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// jwtKey is a signing key of the test's identity provider.
type jwtKey struct {
	kid string
	alg string
	key crypto.Signer
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is the public JWK of k.
func (k jwtKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid, "alg": k.alg, "use": "sig"}
	switch pub := k.key.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64url(pub.N.Bytes()), b64url(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		raw, _ := pub.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64url(raw[1:33]), b64url(raw[33:])
	}
	return m
}

// signJWT makes a compact JWS; alg "none" gives an empty signature and
// "HS256" an HMAC under hmacKey.
func signJWT(t *testing.T, k jwtKey, header, claims map[string]any, hmacKey []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64url(h) + "." + b64url(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch header["alg"] {
	case "none":
	case "HS256":
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "RS256":
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k.key.(*rsa.PrivateKey), crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.key.(*ecdsa.PrivateKey), digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		t.Fatalf("alg %v", header["alg"])
	}
	return input + "." + b64url(sig)
}

// TestJWT authenticates with bearer tokens: JWTs verified against a JWKS
// that an HTTP server of the test publishes (the case of Grafana forwarding
// its users' OAuth tokens), and static API tokens stored as hashes. curl is
// the client. Of the JWTs, only the valid ones pass: expired, wrong
// audience, wrong issuer, unknown key, alg none and an HMAC forged with the
// public key are all 401.
func TestJWT(t *testing.T) {
	skipIfShort(t)
	bin := requirePromgate(t)
	curl := requireTool(t, "curl")
	prom := startSmallPrometheus(t)
	dir := t.TempDir()

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	strangerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idpRSA := jwtKey{kid: "idp-rsa-1", alg: "RS256", key: rsaKey}
	idpEC := jwtKey{kid: "idp-ec-1", alg: "ES256", key: ecKey}
	stranger := jwtKey{kid: "not-published", alg: "ES256", key: strangerKey}

	var fetches atomic.Int64
	jwks, _ := json.Marshal(map[string]any{"keys": []any{idpRSA.jwk(), idpEC.jwk()}})
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/protocol/openid-connect/certs" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(idp.Close)

	const issuer = "https://idp.example/realms/monitoring"
	apiToken := "pgt_" + hex.EncodeToString([]byte("0123456789abcdef-a-long-random-token"))
	hashOut, err := exec.Command(bin, "hash-token").Output()
	if err == nil {
		t.Fatalf("hash-token without input succeeded: %s", hashOut)
	}
	cmd := exec.Command(bin, "hash-token")
	cmd.Stdin = strings.NewReader(apiToken + "\n")
	hashOut, err = cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`upstreams:
  prometheus:
    url: %s
authentication:
  api_tokens:
    - user: ci-robot
      sha256: %s
  jwt:
    issuer: %s
    audiences: [promgate, grafana]
    jwks_url: %s/protocol/openid-connect/certs
    user_claim: preferred_username
    groups_claim: groups
    algorithms: [RS256, ES256]
  brute_force:
    max_failures: 100   # this test fails on purpose, from one address
policies:
  - name: team-a
    subjects: ["group:team-a"]
    selectors: ['{team="a"}']
  - name: bob
    subjects: ["user:bob"]
    selectors: ['{team="b"}']
  - name: robot
    subjects: ["user:ci-robot"]
    selectors: ['{team="c"}']
`, prom.url, strings.TrimSpace(string(hashOut)), issuer, idp.URL)
	file := filepath.Join(dir, "promgate.yml")
	authWriteFile(t, file, cfg)
	if out, err := exec.Command(bin, "check", "config", file).CombinedOutput(); err != nil {
		t.Fatalf("check config: %v\n%s", err, out)
	}
	gate, err := startServer(t, "promgate-jwt", dir, bin, func(addr string) []string {
		return []string{"--config.file=" + file, "--web.listen-address=" + addr}
	})
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now().Unix()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{
			"iss": issuer, "aud": []string{"grafana", "account"}, "sub": "3f1c-uuid",
			"preferred_username": "alice", "groups": []string{"team-a"},
			"iat": now - 60, "nbf": now - 60, "exp": now + 600,
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	hdr := func(k jwtKey) map[string]any { return map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"} }
	pubDER := rsaKey.PublicKey.N.Bytes()

	for _, tc := range []struct {
		name      string
		token     string
		wantCode  int
		wantTeams []string
		reason    string // in the 401's error
	}{
		{"valid RS256, group from the groups claim", signJWT(t, idpRSA, hdr(idpRSA), claims(), nil), 200, []string{"a"}, ""},
		{"valid ES256, user from preferred_username", signJWT(t, idpEC, hdr(idpEC), claims("preferred_username", "bob", "groups", []string{}), nil), 200, []string{"b"}, ""},
		{"expired", signJWT(t, idpRSA, hdr(idpRSA), claims("exp", now-3600, "iat", now-7200, "nbf", now-7200), nil), 401, nil, "token expired"},
		{"wrong audience", signJWT(t, idpRSA, hdr(idpRSA), claims("aud", "another-app"), nil), 401, nil, "wrong audience"},
		{"wrong issuer", signJWT(t, idpRSA, hdr(idpRSA), claims("iss", "https://evil.example"), nil), 401, nil, "wrong issuer"},
		{"unknown key", signJWT(t, stranger, hdr(stranger), claims(), nil), 401, nil, "no matching key"},
		{"unknown key under a published kid", signJWT(t, stranger, hdr(idpEC), claims(), nil), 401, nil, "invalid signature"},
		{"alg none", signJWT(t, idpRSA, map[string]any{"alg": "none", "typ": "JWT"}, claims(), nil), 401, nil, "algorithm not allowed"},
		{"alg none with a published kid", signJWT(t, idpRSA, map[string]any{"alg": "none", "kid": idpRSA.kid}, claims(), nil), 401, nil, "algorithm not allowed"},
		{"HS256 keyed with the public key", signJWT(t, idpRSA, map[string]any{"alg": "HS256", "kid": idpRSA.kid}, claims(), pubDER), 401, nil, "algorithm not allowed"},
		{"static API token", apiToken, 200, []string{"c"}, ""},
		{"unknown static token", apiToken + "x", 401, nil, "invalid bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, teams, _, err := curlTeams(curl, gate.url, "-H", "Authorization: Bearer "+tc.token)
			if err != nil || code != tc.wantCode || !slices.Equal(teams, tc.wantTeams) {
				t.Errorf("status %d teams %v, want %d %v (%v)", code, teams, tc.wantCode, tc.wantTeams, err)
			}
			if tc.wantCode == 401 {
				_, _, resp, body, err := teamsVia(httpClient, gate.url, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tc.token) })
				if err != nil {
					t.Fatal(err)
				}
				if err := errorEnvelope(body, "unauthorized"); err != nil || resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 answer: %v, WWW-Authenticate %q", err, resp.Header.Get("WWW-Authenticate"))
				}
				if !strings.Contains(string(body), tc.reason) {
					t.Errorf("401 answer %s lacks the reason %q", body, tc.reason)
				}
			}
		})
	}

	// The JWKS was fetched on first use and not on every request.
	if n := fetches.Load(); n < 1 || n > 3 {
		t.Errorf("JWKS fetched %d times", n)
	}
	// whoami shows the identity the token carried.
	out, err := exec.Command(curl, "-sS", "-H", "Authorization: Bearer "+signJWT(t, idpRSA, hdr(idpRSA), claims(), nil), gate.url+"/-/whoami").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"user":"alice"`) || !strings.Contains(string(out), `"method":"jwt"`) {
		t.Errorf("whoami: %v %s", err, out)
	}
	// Tokens never reach the log.
	if log := gate.log(); strings.Contains(log, apiToken) || strings.Contains(log, "eyJ") {
		t.Errorf("a token was logged:\n%s", log)
	}
}
