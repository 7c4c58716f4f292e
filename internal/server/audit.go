package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/promgate/promgate/internal/audit"
	"github.com/promgate/promgate/internal/identity"
)

// maxErrorBody is how much of an error answer the audit keeps to read the
// refusal's reason from.
const maxErrorBody = 1024

// auditWriter follows one audited answer: status, bytes, and the start of
// an error body.
type auditWriter struct {
	http.ResponseWriter
	rec         *audit.Record
	code        int
	wroteHeader bool
	bytes       int64
	errBody     []byte
}

// startAudit starts the audit record of r: the request id goes upstream
// in r's header and back to the client in the answer's.
func startAudit(w http.ResponseWriter, r *http.Request) (*auditWriter, *http.Request) {
	rec := audit.NewRecord(r, time.Now())
	r.Header.Set(audit.RequestIDHeader, rec.ID())
	w.Header().Set(audit.RequestIDHeader, rec.ID())
	return &auditWriter{ResponseWriter: w, rec: rec, code: http.StatusOK},
		r.WithContext(audit.NewContext(r.Context(), rec))
}

// finish writes the record; deferred, so an answer cut by a panic is
// logged too.
func (aw *auditWriter) finish(lg *audit.Logger) {
	lg.Log(aw.rec, audit.Answer{Status: aw.code, Bytes: aw.bytes, ErrorBody: aw.errBody}, time.Now())
}

func (aw *auditWriter) WriteHeader(code int) {
	if !aw.wroteHeader && code >= 200 {
		aw.code, aw.wroteHeader = code, true
	}
	aw.ResponseWriter.WriteHeader(code)
}

func (aw *auditWriter) Write(p []byte) (int, error) {
	aw.wroteHeader = true
	n, err := aw.ResponseWriter.Write(p)
	aw.bytes += int64(n)
	if aw.code >= 400 && len(aw.errBody) < maxErrorBody {
		aw.errBody = append(aw.errBody, p[:min(n, maxErrorBody-len(aw.errBody))]...)
	}
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer
// (flushes, full duplex).
func (aw *auditWriter) Unwrap() http.ResponseWriter { return aw.ResponseWriter }

// auditPassthrough notes an unrestricted request's query and match[]:
// they go upstream as asked. A POST body is not read for the audit.
func auditPassthrough(r *http.Request) {
	if ar := audit.From(r.Context()); ar != nil && r.URL.RawQuery != "" {
		q := r.URL.Query()
		ar.SetClient(q)
		ar.SetSent(q)
	}
}

// noPolicyReason says, for the audit, why an identity has no access.
func noPolicyReason(id identity.Identity) string {
	if len(id.Groups) == 0 {
		return fmt.Sprintf("no policy names user %q, who is in no group", id.User)
	}
	return fmt.Sprintf("no policy names user %q or any of their groups (%s)", id.User, strings.Join(id.Groups, ", "))
}
