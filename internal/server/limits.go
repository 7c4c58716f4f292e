package server

import (
	"errors"
	"net/http"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/limits"
)

// admit applies the identity's rate and concurrency limits to a request
// bound upstream, and hands its query guards to the handlers. It answers
// a refusal itself (429 with Retry-After, in the path's error shape) and
// then returns ok false; otherwise the caller must call release when done.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, st *State, path string, id identity.Identity, acc *access) (_ *http.Request, release func(), ok bool) {
	l := acc.limits
	if l == nil {
		return r, func() {}, true
	}
	release, err := s.limits.Admit(r.Context(), id.User, l)
	if err != nil {
		var le *limits.Error
		if errors.As(err, &le) {
			w.Header().Set("Retry-After", le.RetryAfterSeconds())
		}
		s.opts.Logger.Info("request refused", "user", id.User, "path", path, "reason", err.Error())
		writeError(w, path, apierror.New(apierror.TooManyRequests, "%v", err))
		return r, nil, false
	}
	if l.Guards() {
		r = r.WithContext(limits.NewContext(r.Context(), l))
		// A restricted identity's queries meet the guards where they
		// are parsed; an allow_all one's go upstream as asked, so here.
		if acc.policy.AllowAll {
			if err := st.PromAPI.CheckGuards(r, path); err != nil {
				release()
				s.opts.Logger.Info("request refused", "user", id.User, "path", path, "reason", err.Error())
				writeError(w, path, err)
				return r, nil, false
			}
		}
	}
	return r, release, true
}
