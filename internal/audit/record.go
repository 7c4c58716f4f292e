// Package audit records one line per request: who asked what, what
// promgate sent upstream in their name, and what it decided. A Record is
// created when the request arrives, carried in its context and filled by
// each stage of the pipeline; the Logger writes it when the answer is done.
//
// A Record never holds a credential: the stages hand it names, policies,
// queries and statuses, never headers.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// RequestIDHeader carries the request id to the upstream and back to the
// client.
const RequestIDHeader = "X-Request-Id"

// Decisions.
const (
	Allowed = "allowed" // sent upstream (whatever the upstream answered)
	Denied  = "denied"  // refused by promgate
	Failed  = "error"   // promgate could not complete it (upstream down, timeout)
)

// Record is the audit record of one request. Its setters may be called on
// a nil Record (audit off): they then do nothing.
type Record struct {
	mu sync.Mutex

	start          time.Time
	id             string
	clientID       bool // id is the one the client sent
	remote, method string
	path           string

	user, authMethod string
	groups           []string
	authenticated    bool
	policies         []string
	allowAll         bool

	query, match, filter []string // as the client sent them
	sentQuery, sentMatch []string // as promgate sent them
	sentFilter           []string // Alertmanager filters handed down

	denyReason     string
	upstreamStatus int
}

// NewRecord starts the record of r. The request id is the client's
// X-Request-Id when it is a short safe token (so a caller's trace id
// follows the request), else a fresh random one: a value that could
// break a log line or hide another id is never kept.
func NewRecord(r *http.Request, now time.Time) *Record {
	rec := &Record{start: now, remote: r.RemoteAddr, method: r.Method, path: r.URL.Path}
	if id := r.Header.Get(RequestIDHeader); SafeID(id) {
		rec.id, rec.clientID = id, true
	} else {
		rec.id = NewID()
	}
	return rec
}

// ID is the request id.
func (r *Record) ID() string {
	if r == nil {
		return ""
	}
	return r.id
}

// MaxIDLength bounds a client's request id.
const MaxIDLength = 64

// SafeID reports whether a client's request id can be kept: 1 to 64
// letters, digits, '-', '_', '.' or ':'.
func SafeID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// NewID returns a random request id of 32 hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	return hex.EncodeToString(b[:])
}

type ctxKey struct{}

// NewContext returns ctx carrying rec.
func NewContext(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, ctxKey{}, rec)
}

// From returns the record ctx carries, or nil when auditing is off.
func From(ctx context.Context) *Record {
	rec, _ := ctx.Value(ctxKey{}).(*Record)
	return rec
}

// SetIdentity notes who the caller proved to be.
func (r *Record) SetIdentity(user string, groups []string, method string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.user, r.groups, r.authMethod, r.authenticated = user, groups, method, true
	r.mu.Unlock()
}

// SetPolicy notes the policies that matched the caller.
func (r *Record) SetPolicy(names []string, allowAll bool) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.policies, r.allowAll = names, allowAll
	r.mu.Unlock()
}

// Deny notes why promgate refused the request, in an operator's words.
func (r *Record) Deny(reason string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.denyReason = reason
	r.mu.Unlock()
}

// SetClient notes the query, match[] and (Alertmanager) filter the client
// sent.
func (r *Record) SetClient(vs url.Values) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.query = appendValues(r.query[:0], vs, "query")
	r.match = appendValues(r.match[:0], vs, "match[]")
	r.filter = appendValues(r.filter[:0], vs, "filter")
	r.mu.Unlock()
}

// SetSent notes the query and match[] promgate sent upstream. A request
// sent in several parts (a query split per selector) adds each part.
func (r *Record) SetSent(vs url.Values) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.sentQuery = appendValues(r.sentQuery, vs, "query")
	r.sentMatch = appendValues(r.sentMatch, vs, "match[]")
	r.mu.Unlock()
}

// SetSentFilter notes the Alertmanager filters promgate handed down.
func (r *Record) SetSentFilter(filters []string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.sentFilter = append(r.sentFilter, filters...)
	r.mu.Unlock()
}

// SetUpstreamStatus notes the status the upstream answered.
func (r *Record) SetUpstreamStatus(code int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.upstreamStatus = code
	r.mu.Unlock()
}

func appendValues(dst []string, vs url.Values, key string) []string {
	return append(dst, vs[key]...)
}
