package server

import (
	"bytes"
	"embed"
	"html/template"
	"mime"
	"net/http"
	"strings"

	"github.com/promgate/promgate/internal/identity"
)

//go:embed templates/whoami.html
var whoamiFS embed.FS

var whoamiTmpl = template.Must(template.ParseFS(whoamiFS, "templates/whoami.html"))

// maxWhoamiForm bounds the form of the whoami page: a query and a selector.
const maxWhoamiForm = 64 << 10

// whoamiCSP keeps the page to itself: no script, no asset from elsewhere,
// its form submitted only to promgate.
const whoamiCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// wantsHTML reports whether the client is a browser asking for a page;
// API clients (curl, Grafana) ask for JSON or anything.
func wantsHTML(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if t, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && (t == "text/html" || t == "application/xhtml+xml") {
			return true
		}
	}
	return false
}

type whoamiPage struct {
	Viewer *Explanation
	// The form's values, shown back.
	Query, Match, ForUser, ForGroups string
	// Ex is the explanation of the form (nil when nothing was asked);
	// Other says it is for another user than the viewer.
	Ex    *Explanation
	Other bool
	Error string
}

// serveWhoamiPage answers /-/whoami to a browser: the identity, what it can
// see, and how a query from the form (explain=, match=) would be rewritten,
// computed by the enforcement code without calling an upstream. An allow_all
// identity may explain for another user (user=, groups=).
func (s *Server) serveWhoamiPage(w http.ResponseWriter, r *http.Request, st *State, id identity.Identity) {
	status := http.StatusOK
	page := whoamiPage{}
	page.Viewer, _ = st.Explain(id, ExplainRequest{})

	r.Body = http.MaxBytesReader(w, r.Body, maxWhoamiForm)
	if err := r.ParseForm(); err != nil {
		status, page.Error = http.StatusBadRequest, "invalid form: "+err.Error()
	}
	page.Query = strings.TrimSpace(r.Form.Get("explain"))
	page.Match = strings.TrimSpace(r.Form.Get("match"))
	page.ForUser = strings.TrimSpace(r.Form.Get("user"))
	page.ForGroups = r.Form.Get("groups")

	target := id
	if page.Error == "" && page.ForUser != "" && (page.ForUser != id.User || page.ForGroups != "") {
		if !page.Viewer.AllowAll {
			status, page.Error = http.StatusForbidden, "Only unrestricted (allow_all) identities may explain for another user."
		} else {
			target = identity.Identity{User: page.ForUser, Groups: splitGroups(page.ForGroups)}
			page.Other = true
		}
	}
	if page.Error == "" && (page.Query != "" || page.Match != "" || page.Other) {
		req := ExplainRequest{Query: page.Query}
		if page.Match != "" {
			req.Match = []string{page.Match}
		}
		// A refusal is part of the explanation; the page shows it.
		page.Ex, _ = st.Explain(target, req)
	}

	var buf bytes.Buffer
	if err := whoamiTmpl.Execute(&buf, page); err != nil {
		s.opts.Logger.Error("whoami page", "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", whoamiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func splitGroups(s string) []string {
	var out []string
	for _, g := range strings.Split(s, ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out
}
