package server

import (
	"net/http"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/upstream"
)

// Prometheus' web UI answers some routes with nothing but a redirect
// (web/web.go): "/" to the home page, "/graph" to "/query" (3.x) or to
// "/graph/" and then "/classic/graph" (2.x as Debian builds it), "/classic"
// and "/classic/" to "/classic/graph", "/new/..." to the same path at the
// root (2.x). A redirect carries no data, only the page it leads to, which
// is checked when the browser follows it; so a restricted identity's
// request on these routes is forwarded with its query string (the
// expression of a bookmarked /graph?g0.expr=... link travels in it) and
// only a redirect is passed back. Any other answer is dropped and the
// request gets the ordinary UI decision instead.

var redirectRoutes = map[string]bool{
	"/": true, "/graph": true, "/graph/": true, "/classic": true, "/classic/": true,
}

func redirectOnly(path string) bool {
	return redirectRoutes[path] || (strings.HasPrefix(path, "/new/") && !strings.Contains(path, ".."))
}

// forwardRedirect asks up for path and passes its answer to w if it is a
// redirect; it reports whether it answered. A request that is not GET or
// HEAD is not sent: it is answered 405, as every UI route does.
func forwardRedirect(w http.ResponseWriter, r *http.Request, up *upstream.Upstream, path string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierror.Write(w, apierror.New(apierror.MethodNotAllowed, "method %s not allowed on %s", r.Method, path))
		return true
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = path, ""
	out.Body, out.ContentLength = http.NoBody, 0
	rw := &redirectWriter{w: w, header: http.Header{}}
	up.ServeHTTP(rw, out)
	return rw.passed
}

// redirectWriter holds an answer's header until its status is known, and
// passes the answer on only if it is a redirect.
type redirectWriter struct {
	w       http.ResponseWriter
	header  http.Header
	decided bool
	passed  bool
}

func (rw *redirectWriter) Header() http.Header { return rw.header }

func (rw *redirectWriter) WriteHeader(code int) {
	if rw.decided {
		return
	}
	rw.decided = true
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return
	}
	rw.passed = true
	dst := rw.w.Header()
	for k, vv := range rw.header {
		dst[k] = vv
	}
	rw.w.WriteHeader(code)
}

func (rw *redirectWriter) Write(b []byte) (int, error) {
	if !rw.decided {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.passed {
		return len(b), nil
	}
	return rw.w.Write(b)
}
