package server

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
)

// Internal returns the handler of the internal listener
// (--web.internal-listen-address): /metrics, /-/reload, /-/healthy,
// /-/ready and pprof under /debug/pprof/, at the root whatever the route
// prefix, without authentication. It is safe only because the operator
// binds it to an address tenants cannot reach; it serves nothing of the
// upstreams. Its requests are not counted in promgate_http_requests_total,
// which counts the tenants' requests.
func (s *Server) Internal() http.Handler { return http.HandlerFunc(s.serveInternal) }

func (s *Server) serveInternal(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case "/-/healthy":
		writeText(w, "promgate is Healthy.\n")
		return
	case "/-/ready":
		writeText(w, "promgate is Ready.\n")
		return
	case "/metrics":
		s.promMetrics.ServeHTTP(w, r)
		return
	case "/-/reload":
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			apierror.Write(w, apierror.New(apierror.MethodNotAllowed, "reload needs POST or PUT"))
			return
		}
		if s.opts.Reload == nil {
			apierror.Write(w, apierror.New(apierror.Forbidden, "reload is not enabled"))
			return
		}
		s.runReload(w)
		return
	case "/debug/pprof":
		http.Redirect(w, r, "/debug/pprof/", http.StatusMovedPermanently)
		return
	}
	name, ok := strings.CutPrefix(path, "/debug/pprof/")
	if !ok {
		apierror.Write(w, apierror.New(apierror.NotFound, "%s is not served on the internal listener", path))
		return
	}
	switch name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		// The index, and the named profiles (heap, goroutine, ...).
		pprof.Index(w, r)
	}
}
