package server

import (
	"mime"
	"net/http"
	"strings"

	"github.com/promgate/promgate/internal/alertmanager"
	"github.com/promgate/promgate/internal/apierror"
)

// methodNotAllowedWriter replaces an upstream's plain-text 405 (Prometheus'
// router answers "Method Not Allowed") with Prometheus' JSON envelope, which
// API clients parse; the upstream's Allow header is kept. Every other
// answer passes untouched.
type methodNotAllowedWriter struct {
	http.ResponseWriter
	r        *http.Request
	path     string
	replaced bool
}

func (m *methodNotAllowedWriter) WriteHeader(code int) {
	if code != http.StatusMethodNotAllowed || isJSON(m.Header().Get("Content-Type")) {
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.replaced = true
	h := m.Header()
	allow := h.Values("Allow")
	for k := range h {
		delete(h, k)
	}
	if len(allow) > 0 {
		h["Allow"] = allow
	}
	apierror.Write(m.ResponseWriter, apierror.New(apierror.MethodNotAllowed, "method %s not allowed on %s", m.r.Method, m.path))
}

func (m *methodNotAllowedWriter) Write(b []byte) (int, error) {
	if m.replaced {
		return len(b), nil // the upstream's plain-text body
	}
	return m.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer's Flush.
func (m *methodNotAllowedWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// alertmanagerErrorWriter answers a failed call to Alertmanager (502, 504)
// in the shape Alertmanager's clients read: the API v1, gone from
// Alertmanager 0.27, answered in the envelope apierror writes; everything
// else as the API v2 answers a handler's error, a JSON string.
func alertmanagerErrorWriter(w http.ResponseWriter, r *http.Request, err error) {
	if strings.HasPrefix(r.URL.Path, "/api/v1/") {
		apierror.Write(w, err)
		return
	}
	alertmanager.WriteError(w, err)
}
