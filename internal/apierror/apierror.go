// Package apierror owns promgate's error responses: the error types, their
// HTTP statuses, and the JSON envelope Prometheus clients understand. Every
// error promgate answers goes through Write, so no error has an empty body.
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Type is the errorType of Prometheus' envelope.
type Type string

// Error types, with the statuses Write gives them.
const (
	BadData          Type = "bad_data"           // 400
	Unauthorized     Type = "unauthorized"       // 401
	Forbidden        Type = "forbidden"          // 403
	NotFound         Type = "not_found"          // 404
	MethodNotAllowed Type = "method_not_allowed" // 405
	TooLarge         Type = "too_large"          // 413
	Execution        Type = "execution"          // 422
	UnsupportedMedia Type = "unsupported_media"  // 415
	TooManyRequests  Type = "too_many_requests"  // 429
	Canceled         Type = "canceled"           // 499
	Internal         Type = "internal"           // 500
	Upstream         Type = "upstream"           // 502
	Unavailable      Type = "unavailable"        // 503
	Timeout          Type = "timeout"            // 504
)

var statuses = map[Type]int{
	BadData:          http.StatusBadRequest,
	Unauthorized:     http.StatusUnauthorized,
	Forbidden:        http.StatusForbidden,
	NotFound:         http.StatusNotFound,
	MethodNotAllowed: http.StatusMethodNotAllowed,
	TooLarge:         http.StatusRequestEntityTooLarge,
	Execution:        http.StatusUnprocessableEntity,
	UnsupportedMedia: http.StatusUnsupportedMediaType,
	TooManyRequests:  http.StatusTooManyRequests,
	Canceled:         499,
	Internal:         http.StatusInternalServerError,
	Upstream:         http.StatusBadGateway,
	Unavailable:      http.StatusServiceUnavailable,
	Timeout:          http.StatusGatewayTimeout,
}

// Error is an error with a type that decides its status.
type Error struct {
	Type Type
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of the error.
func (e *Error) Status() int {
	if s, ok := statuses[e.Type]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// New returns a typed error with a formatted message.
func New(t Type, format string, args ...any) *Error {
	return &Error{Type: t, Err: fmt.Errorf(format, args...)}
}

// Wrap types err; an err that is already an *Error keeps its own type.
func Wrap(t Type, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Type: t, Err: err}
}

type envelope struct {
	Status    string `json:"status"`
	ErrorType Type   `json:"errorType"`
	Error     string `json:"error"`
}

// Realm is the basic auth realm announced on 401.
const Realm = "promgate"

// Write answers err in Prometheus' JSON error envelope. Untyped errors are
// internal errors.
func Write(w http.ResponseWriter, err error) {
	e := Wrap(Internal, err)
	body, _ := json.Marshal(envelope{Status: "error", ErrorType: e.Type, Error: e.Error()})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Content-Encoding")
	if e.Type == Unauthorized {
		h.Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	}
	w.WriteHeader(e.Status())
	_, _ = w.Write(body)
}
