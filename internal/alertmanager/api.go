// Package alertmanager enforces a policy on Alertmanager's API v2: alerts
// and silences are filtered and guarded so that each tenant sees and changes
// only its own.
package alertmanager

import (
	"context"
	"net/http"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
)

// Upstream is the Alertmanager behind promgate.
type Upstream interface {
	http.Handler
	Do(r *http.Request) (*http.Response, error)
	WithTimeout(ctx context.Context) (context.Context, context.CancelFunc)
}

// Options configure the API.
type Options struct{}

// API enforces policies on Alertmanager's API v2.
type API struct {
	up   Upstream
	opts Options
}

// New returns an API in front of up.
func New(up Upstream, opts Options) *API { return &API{up: up, opts: opts} }

// Handle serves one request of a restricted identity whose policy is the
// union of selectors; path is relative to Alertmanager's root.
func (a *API) Handle(w http.ResponseWriter, r *http.Request, path string, selectors [][]*labels.Matcher) {
	apierror.Write(w, apierror.New(apierror.Forbidden, "%s is not available to restricted users", path))
}
