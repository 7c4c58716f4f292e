package upstream

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
)

// Tenancy names the tenant each request is sent as: X-Scope-OrgID for
// Mimir, Cortex, GEM and Loki, THANOS-TENANT for Thanos. Exactly one value
// goes upstream, rendered for the caller; the client's copies are removed
// with the other tenancy headers (Options.HeaderNames).
type Tenancy struct {
	// Header carries the tenant ID.
	Header string
	// Tenant renders and validates the caller's tenant ID; an error is a
	// 403 naming it.
	Tenant func(user string) (string, error)
	// LabelPolicy also sends the caller's selectors as X-Prom-Label-Policy
	// (GEM's and Loki's label-based access control).
	LabelPolicy bool
}

// LabelPolicyHeader is the header of GEM's and Loki's label policies.
const LabelPolicyHeader = "X-Prom-Label-Policy"

type policyKey struct{}

// requestPolicy is the caller's access, for the label policy header.
type requestPolicy struct {
	allowAll  bool
	selectors [][]*labels.Matcher
}

// WithPolicy returns a context carrying the caller's access: allow_all, or
// the selectors of which a series must match one.
func WithPolicy(ctx context.Context, allowAll bool, selectors [][]*labels.Matcher) context.Context {
	return context.WithValue(ctx, policyKey{}, requestPolicy{allowAll: allowAll, selectors: selectors})
}

// LabelPolicyValues are the X-Prom-Label-Policy values of a policy: one per
// selector, "<tenant>:<selector>", the selector's matchers in braces,
// separated by ", ", path-escaped (as GEM's and Loki's own encoding, which
// the reader splits on commas: an escaped selector holds none).
func LabelPolicyValues(tenant string, selectors [][]*labels.Matcher) []string {
	out := make([]string, len(selectors))
	var b strings.Builder
	for i, ms := range selectors {
		b.Reset()
		b.WriteByte('{')
		for j, m := range ms {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(m.String())
		}
		b.WriteByte('}')
		out[i] = tenant + ":" + url.PathEscape(b.String())
	}
	return out
}

// tenancyHeaders adds the tenancy headers of the request's caller to h
// (which may be nil) and returns it.
func (u *Upstream) tenancyHeaders(r *http.Request, user string, h http.Header) (http.Header, error) {
	t := u.tenancy
	id, err := t.Tenant(user)
	if err != nil {
		u.logger.Info("request refused: invalid tenant", "user", user, "err", err)
		return nil, apierror.New(apierror.Forbidden, "user %q has no valid tenant for the upstream: %v", user, err)
	}
	if h == nil {
		h = http.Header{}
	}
	h[http.CanonicalHeaderKey(t.Header)] = []string{id}
	if !t.LabelPolicy {
		return h, nil
	}
	p, ok := r.Context().Value(policyKey{}).(requestPolicy)
	switch {
	case !ok:
		// Fail closed: without the caller's policy the upstream would
		// apply none.
		return nil, apierror.New(apierror.Internal, "the label policy of this request is unknown")
	case p.allowAll:
		// No policy header: the whole tenant, as GEM gives a token
		// without label selectors.
	default:
		h[LabelPolicyHeader] = LabelPolicyValues(id, p.selectors)
	}
	return h, nil
}
