package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/config"
)

// Runtime is what the Authenticators of successive configurations share,
// and their environment.
type Runtime struct {
	// Guard counts failed logins across reloads; nil means a new one.
	Guard *Guard
	// Logger reports JWKS fetch failures; nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient fetches a jwks_url; nil means a client with a timeout.
	HTTPClient *http.Client
}

// FromConfig builds the Authenticator of a loaded configuration: its users
// (those of promgate.yml and of the web configuration), trusted header,
// client certificate mapping, API tokens and JWT settings. A jwks_file is
// read and parsed here, so that a broken one fails the (re)load; a jwks_url
// is fetched on first use.
func FromConfig(cfg *config.Config, rt Runtime) (*Authenticator, error) {
	au := cfg.Authentication
	o := Options{
		BasicAuthUsers: cfg.Users(),
		Guard:          rt.Guard,
		Limits:         Limits{MaxFailures: au.BruteForce.MaxFailures, Window: au.BruteForce.Window},
	}
	if th := au.TrustedHeader; th != nil {
		o.HeaderName, o.TrustedSources = th.Name, th.Prefixes
	}
	if cc := au.ClientCertificate; cc != nil {
		o.ClientCertificate = &CertificateOptions{UserFrom: cc.UserFrom, GroupsFrom: cc.GroupsFrom}
	}
	if len(au.APITokens) > 0 {
		o.Tokens = make(map[[32]byte]string, len(au.APITokens))
		for _, t := range au.APITokens {
			o.Tokens[t.Hash] = t.User
		}
	}
	if j := au.JWT; j != nil {
		var keys Keys
		if j.JWKSFile != "" {
			data, err := os.ReadFile(j.JWKSFile)
			if err != nil {
				return nil, fmt.Errorf("jwt.jwks_file: %w", err)
			}
			ks, _, err := jwt.ParseKeySet(data)
			if err != nil {
				return nil, fmt.Errorf("jwt.jwks_file %s: %w", j.JWKSFile, err)
			}
			keys = StaticKeys{KeySet: ks}
		} else {
			keys = NewRemoteKeys(j.JWKSURL, rt.HTTPClient, j.JWKSRefreshInterval, rt.Logger)
		}
		o.JWT = &JWTOptions{
			Validation: jwt.Validation{
				Issuer:     j.Issuer,
				Audiences:  j.Audiences,
				Algorithms: j.Algorithms,
				Leeway:     j.Leeway,
			},
			UserClaim:   j.UserClaim,
			GroupsClaim: j.GroupsClaim,
			Keys:        keys,
		}
	}
	return New(o), nil
}
