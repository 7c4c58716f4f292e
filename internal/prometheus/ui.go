package prometheus

import (
	"net/http"
	"strings"

	"github.com/promgate/promgate/internal/apierror"
)

// The Prometheus web UI. Pages of the React UI (and the classic expression
// browser) are static shells that fetch everything through the API, which
// is enforced; they pass. Pages that Prometheus 2.x renders on the server
// with data in the HTML (classic alerts, targets, rules, config, flags,
// status, service discovery, console templates) are refused.

// uiPages are the React UI's routes (all serve the same page) and the
// classic expression browser.
var uiPages = map[string]bool{
	"/": true, "/graph": true, "/alerts": true, "/targets": true, "/rules": true,
	"/service-discovery": true, "/status": true, "/tsdb-status": true, "/flags": true,
	"/config": true, "/agent": true, "/starting": true, "/query": true, "/alertmanager-discovery": true,
	"/classic/graph": true, "/manifest.json": true, "/favicon.ico": true, "/favicon.svg": true,
}

// uiAssetPrefixes hold static files only.
var uiAssetPrefixes = []string{"/static/", "/classic/static/", "/assets/"}

// isUI reports whether path is a UI page or asset a restricted user may load.
func isUI(path string) bool {
	if uiPages[path] {
		return true
	}
	for _, p := range uiAssetPrefixes {
		if strings.HasPrefix(path, p) && !strings.Contains(path, "..") {
			return true
		}
	}
	return false
}

// ui forwards a UI page or asset without its query string: the page reads
// its parameters in the browser, Prometheus does not need them.
func (a *API) ui(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		apierror.Write(w, apierror.New(apierror.MethodNotAllowed, "method %s not allowed on %s", r.Method, path))
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath, out.URL.RawQuery = path, "", ""
	out.Body, out.ContentLength = http.NoBody, 0
	a.up.ServeHTTP(w, out)
}
