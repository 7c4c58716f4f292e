// Package alertmanager enforces a policy on Alertmanager's API v2: alerts
// and silences are filtered and guarded so that each tenant sees and changes
// only its own.
//
// Enforcement is pure (Enforcer: which alerts are visible, which silences
// are the tenant's, the matchers a new silence gets, which alerts may be
// posted given the inhibit rules, which receivers the routing tree can
// use); api.go and handlers.go are the HTTP layer. Only the endpoints of
// routes are served to restricted identities; the rest, the API v1
// included, is refused.
//
// What a tenant learns of others: nothing of their alerts, silences or
// inhibiting alerts (references to them are removed from the tenant's
// alerts; another tenant's silence is "not found" to read, and "does not
// exist or is not yours" to change, exactly as a silence that does not
// exist). Of the configuration, only the receivers its own alerts can
// reach, and the labels its alert groups are grouped by. Of the cluster,
// its status, the node's and peers' names, not their addresses. That its
// own alert is suppressed (its state) is kept, even when what suppresses
// it is not shown.
package alertmanager

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
)

// Upstream is the Alertmanager behind promgate.
type Upstream interface {
	// ServeHTTP streams r's answer to w (the UI's static files).
	http.Handler
	// Do returns the answer to r, for the answers promgate reads.
	Do(r *http.Request) (*http.Response, error)
	WithTimeout(ctx context.Context) (context.Context, context.CancelFunc)
}

// ReceiversMode decides what GET /api/v2/receivers shows a restricted
// tenant.
type ReceiversMode int

const (
	// ReceiversRouted lists only the receivers Alertmanager's routing tree
	// can send the tenant's alerts to (see Enforcer.Receivers). It is the
	// default: receiver names often name other teams and customers.
	ReceiversRouted ReceiversMode = iota
	// ReceiversAll lists every receiver, as Alertmanager does.
	ReceiversAll
	// ReceiversNone lists none: an empty list, which clients take as
	// "no receivers" rather than as an error.
	ReceiversNone
)

var receiversModes = []string{"routed", "all", "none"}

// String returns the name ParseReceiversMode reads.
func (m ReceiversMode) String() string {
	if int(m) < len(receiversModes) {
		return receiversModes[m]
	}
	return fmt.Sprintf("ReceiversMode(%d)", int(m))
}

// ParseReceiversMode reads "routed", "all" or "none".
func ParseReceiversMode(s string) (ReceiversMode, error) {
	if i := slices.Index(receiversModes, s); i >= 0 {
		return ReceiversMode(i), nil
	}
	return 0, fmt.Errorf("invalid receivers mode %q: want one of %s", s, strings.Join(receiversModes, ", "))
}

// DefaultMaxBodyBytes bounds the bodies of POST requests (alerts and
// silences) when Options.MaxBodyBytes is not set.
const DefaultMaxBodyBytes = 4 << 20

// Options configure the API.
type Options struct {
	// Receivers decides what GET /api/v2/receivers shows.
	Receivers ReceiversMode
	// MaxBodyBytes bounds request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives warnings (an Alertmanager answer promgate could not
	// read); nil means slog.Default().
	Logger *slog.Logger
}

// API enforces policies on Alertmanager's API v2.
type API struct {
	up     Upstream
	opts   Options
	logger *slog.Logger
}

// New returns an API in front of up.
func New(up Upstream, opts Options) *API {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &API{up: up, opts: opts, logger: logger}
}

// handlerFunc serves one endpoint; a returned error is answered by Handle
// in Alertmanager's format.
type handlerFunc func(a *API, w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error

// routes are the only paths and methods a restricted identity reaches.
// "{id}" is one path segment; "/lib/*" any clean path below /lib/.
var routes = map[string]map[string]handlerFunc{
	"/api/v2/alerts":        {http.MethodGet: (*API).getAlerts, http.MethodPost: (*API).postAlerts},
	"/api/v2/alerts/groups": {http.MethodGet: (*API).getAlertGroups},
	"/api/v2/silences":      {http.MethodGet: (*API).getSilences, http.MethodPost: (*API).postSilences},
	"/api/v2/silence/{id}":  {http.MethodGet: (*API).getSilence, http.MethodDelete: (*API).deleteSilence},
	"/api/v2/status":        {http.MethodGet: (*API).getStatus},
	"/api/v2/receivers":     {http.MethodGet: (*API).getReceivers},
	// The UI and its static files carry no data; the UI reads the API.
	"/":            {http.MethodGet: (*API).static},
	"/script.js":   {http.MethodGet: (*API).static},
	"/favicon.ico": {http.MethodGet: (*API).static},
	"/lib/*":       {http.MethodGet: (*API).static},
}

// lookup returns the key of routes that p falls under.
func lookup(p string) (string, bool) {
	// A path that cleaning changes ("/lib/../api/v1/x", "//", "/./")
	// could reach the upstream as another path than the one checked.
	if p != path.Clean(p) {
		return "", false
	}
	if _, ok := routes[p]; ok {
		return p, true
	}
	if id, ok := strings.CutPrefix(p, "/api/v2/silence/"); ok && id != "" && !strings.Contains(id, "/") {
		return "/api/v2/silence/{id}", true
	}
	if strings.HasPrefix(p, "/lib/") {
		return "/lib/*", true
	}
	return "", false
}

// Handle serves one request of a restricted identity whose policy is the
// union of selectors; path is relative to Alertmanager's root. Only the
// routes pass; everything else is refused with 403.
func (a *API) Handle(w http.ResponseWriter, r *http.Request, path string, selectors [][]*labels.Matcher) {
	key, ok := lookup(path)
	if !ok {
		refuse(w, path)
		return
	}
	methods := routes[key]
	h, ok := methods[r.Method]
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ","))
		writeError(w, newSchemaError(http.StatusMethodNotAllowed, http.StatusMethodNotAllowed,
			"method %s is not allowed, but [%s] are", r.Method, strings.Join(allow, ",")))
		return
	}
	if err := h(a, w, r, NewEnforcer(selectors), path); err != nil {
		writeError(w, err)
	}
}

// refuse answers a path restricted identities cannot use. The API v1 (gone
// from Alertmanager 0.27) answered errors in the envelope that apierror
// writes; everything else as Alertmanager's API v2 refuses a path.
func refuse(w http.ResponseWriter, p string) {
	if strings.HasPrefix(p, "/api/v1/") || p == "/api/v1" {
		apierror.Write(w, apierror.New(apierror.Forbidden,
			"the Alertmanager API v1 is not available to restricted users; use /api/v2"))
		return
	}
	writeError(w, newSchemaError(http.StatusForbidden, http.StatusForbidden,
		"path %s is not available to restricted users", p))
}
