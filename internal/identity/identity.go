// Package identity holds who made a request. It imports nothing of promgate's
// so that every stage of the pipeline can depend on it.
package identity

import "context"

// Identity is an authenticated caller.
type Identity struct {
	// User is the name the caller authenticated as.
	User string
	// Groups the authenticator asserted for the caller (for example from a
	// certificate or a token). Groups from promgate.yml are added by policy.
	Groups []string
	// Method names the authenticator that accepted the caller ("basic",
	// "header"), for logs and introspection.
	Method string
}

type ctxKey struct{}

// NewContext returns a context carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity set by the authentication stage.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
