package limits

import "context"

type ctxKey struct{}

// NewContext carries l to the handlers that apply the query guards.
func NewContext(ctx context.Context, l *Limits) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// FromContext returns the Limits of NewContext, or nil.
func FromContext(ctx context.Context) *Limits {
	l, _ := ctx.Value(ctxKey{}).(*Limits)
	return l
}
