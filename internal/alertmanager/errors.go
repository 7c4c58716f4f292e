package alertmanager

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/promgate/promgate/internal/apierror"
)

// Alertmanager's API v2 answers errors in two shapes, and its clients
// (amtool, the UI) expect them on /api/v2 paths:
//
//   - a request that does not fit the API's schema (unknown path, wrong
//     method, malformed or incomplete body, a silence ID that is not a
//     UUID) is refused by its OpenAPI layer with {"code":N,"message":"…"};
//   - an error of a handler (bad filter, invalid silence, not found) is a
//     JSON string: "message".
//
// Both have Content-Type application/json. promgate answers its own errors
// on /api/v2 paths the same way: schemaError for the first kind, any other
// error (typed by apierror, which decides the status) as a JSON string.

// schemaError is an error Alertmanager's OpenAPI layer would answer.
type schemaError struct {
	status int // HTTP status
	code   int // the "code" of the body: the status, or a validation code
	msg    string
}

func (e *schemaError) Error() string { return e.msg }

// OpenAPI validation codes, as go-openapi numbers them.
const (
	codeInvalidType = 601 // a value of the wrong type or format
	codeRequired    = 602 // a required field is missing
	codeTooFewItems = 612 // an array shorter than its minItems
)

func newSchemaError(status, code int, format string, args ...any) *schemaError {
	return &schemaError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// errParse is a body that is not the JSON the endpoint takes, worded as
// Alertmanager words it.
func errParse(what string, err error) *schemaError {
	return newSchemaError(http.StatusBadRequest, http.StatusBadRequest, "parsing %s body from \"\" failed, because %v", what, err)
}

func errRequired(field string) *schemaError {
	return newSchemaError(http.StatusUnprocessableEntity, codeRequired, "%s in body is required", field)
}

// WriteError answers err in Alertmanager's format, for errors promgate
// raises before a request reaches this package (authentication, policy).
func WriteError(w http.ResponseWriter, err error) {
	if apierror.Wrap(apierror.Internal, err).Type == apierror.Unauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+apierror.Realm+`"`)
	}
	writeError(w, err)
}

// writeError answers err in Alertmanager's format. Untyped errors are
// internal errors.
func writeError(w http.ResponseWriter, err error) {
	var (
		status int
		body   []byte
		se     *schemaError
	)
	if errors.As(err, &se) {
		status = se.status
		body, _ = json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}{se.code, se.msg})
	} else {
		e := apierror.Wrap(apierror.Internal, err)
		status = e.Status()
		body, _ = json.Marshal(e.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Content-Encoding")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
