package server

import (
	"fmt"
	"os"

	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/auth/jwt"
	"github.com/promgate/promgate/internal/config"
)

// BuildAuth builds the Authenticator of a loaded configuration: its users
// (those of promgate.yml and of the web configuration), trusted header,
// client certificate mapping, API tokens and JWT settings. A jwks_file is
// read and parsed here, so that a broken one fails the (re)load; a jwks_url
// is fetched on first use.
//
// It then checks the policies' subjects against what the built methods
// can assert (config.CheckSubjects): an impossible group is an error, a
// user without credentials a warning, returned for the caller to log or
// print.
func BuildAuth(cfg *config.Config, rt auth.Runtime) (*auth.Authenticator, []string, error) {
	au := cfg.Authentication
	o := auth.Options{
		BasicAuthUsers: cfg.Users(),
		Guard:          rt.Guard,
		Limits:         auth.Limits{MaxFailures: au.BruteForce.MaxFailures, Window: au.BruteForce.Window},
	}
	if th := au.TrustedHeader; th != nil {
		o.HeaderName, o.TrustedSources = th.Name, th.Prefixes
	}
	if cc := au.ClientCertificate; cc != nil {
		// config's user_from and groups_from values are auth's Cert*.
		o.ClientCertificate = &auth.CertificateOptions{UserFrom: cc.UserFrom, GroupsFrom: cc.GroupsFrom}
	}
	if len(au.APITokens) > 0 {
		o.Tokens = make(map[[32]byte]string, len(au.APITokens))
		for _, t := range au.APITokens {
			o.Tokens[t.Hash] = t.User
		}
	}
	if j := au.JWT; j != nil {
		var keys auth.Keys
		if j.JWKSFile != "" {
			data, err := os.ReadFile(j.JWKSFile)
			if err != nil {
				return nil, nil, fmt.Errorf("jwt.jwks_file: %w", err)
			}
			ks, _, err := jwt.ParseKeySet(data)
			if err != nil {
				return nil, nil, fmt.Errorf("jwt.jwks_file %s: %w", j.JWKSFile, err)
			}
			keys = auth.StaticKeys{KeySet: ks}
		} else {
			keys = auth.NewRemoteKeys(j.JWKSURL, rt.HTTPClient, j.JWKSRefreshInterval, rt.Logger)
		}
		o.JWT = &auth.JWTOptions{
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
	a := auth.New(o)
	methods := a.Methods()
	asked := make([]config.Method, len(methods))
	for i, m := range methods {
		asked[i] = m
	}
	warnings, err := cfg.CheckSubjects(asked)
	if err != nil {
		return nil, nil, err
	}
	return a, warnings, nil
}
