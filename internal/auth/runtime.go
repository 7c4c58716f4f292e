package auth

import (
	"log/slog"
	"net/http"
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
