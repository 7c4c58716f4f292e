package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/config"
)

func writeJWKS(t *testing.T, dir string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := k.PublicKey.Bytes()
	b := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "kid": "k1", "x": b(raw[1:33]), "y": b(raw[33:])}}})
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBuildAuth builds authenticators from configurations and checks the
// policies' subjects against what the built methods report they can
// assert: the validator asks the methods, it does not know them.
func TestBuildAuth(t *testing.T) {
	dir := t.TempDir()
	jwks := writeJWKS(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for _, tc := range []struct {
		name     string
		auth     string
		subjects string
		methods  []string // names of the built methods
		warn     string
		err      string
	}{
		{"basic only: a user without credentials is a warning", fmt.Sprintf("basic_auth_users: {alice: %s}", hash),
			`["user:alice", "user:bob"]`, []string{"basic"}, `user "bob" has no credentials`, ""},
		{"a trusted header names anyone", fmt.Sprintf("basic_auth_users: {alice: %s}\n  trusted_header: {name: X-User, trusted_sources: [127.0.0.1]}", hash),
			`["user:bob"]`, []string{"header", "basic"}, "", ""},
		{"a trusted header asserts no groups", "trusted_header: {name: X-User, trusted_sources: [127.0.0.1]}",
			`["group:ops"]`, []string{"header"}, "", `group "ops" is not defined under groups`},
		{"a JWT with a groups claim asserts groups", "jwt: {issuer: i, audiences: [a], jwks_file: " + jwks + ", groups_claim: groups}",
			`["group:ops", "user:bob"]`, []string{"jwt"}, "", ""},
		{"tokens name their users", "api_tokens: [{user: robot, sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8}]",
			`["user:robot"]`, []string{"token"}, "", ""},
		{"a broken jwks_file fails", "jwt: {issuer: i, audiences: [a], jwks_file: " + filepath.Join(dir, "bad.json") + "}",
			`["user:bob"]`, nil, "", "jwt.jwks_file"},
		{"a missing jwks_file fails", "jwt: {issuer: i, audiences: [a], jwks_file: " + filepath.Join(dir, "missing.json") + "}",
			`["user:bob"]`, nil, "", "jwt.jwks_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte("upstreams: {prometheus: {url: 'http://127.0.0.1:9'}}\nauthentication:\n  " + tc.auth +
				"\npolicies: [{name: p, subjects: " + tc.subjects + ", allow_all: true}]\n"))
			if err != nil {
				t.Fatal(err)
			}
			a, warns, err := BuildAuth(cfg, auth.Runtime{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range a.Methods() {
				names = append(names, m.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.methods, ",") {
				t.Errorf("methods %v, want %v", names, tc.methods)
			}
			if (tc.warn == "") != (len(warns) == 0) || (tc.warn != "" && !strings.Contains(strings.Join(warns, "\n"), tc.warn)) {
				t.Errorf("warnings %q, want %q", warns, tc.warn)
			}
		})
	}
}
