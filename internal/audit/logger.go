package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Which requests are logged.
const (
	RequestsAll    = "all"
	RequestsDenied = "denied"
)

// DestinationStderr is the destination that writes to standard error.
const DestinationStderr = "stderr"

// Logger writes audit records as JSON lines.
type Logger struct {
	deniedOnly bool
	log        *slog.Logger
}

// NewLogger returns a Logger writing to destination ("stderr" or a file
// path, opened through files so that SIGUSR1 can reopen it) the requests
// of the given kind ("all" or "denied").
func NewLogger(destination, requests string, files *Files) (*Logger, error) {
	var w io.Writer
	switch destination {
	case "", DestinationStderr:
		w = os.Stderr
	default:
		f, err := files.Open(destination)
		if err != nil {
			return nil, err
		}
		w = f
	}
	return NewLoggerTo(w, requests == RequestsDenied), nil
}

// NewLoggerTo returns a Logger writing to w; with deniedOnly, only the
// requests promgate refused.
func NewLoggerTo(w io.Writer, deniedOnly bool) *Logger {
	return &Logger{deniedOnly: deniedOnly, log: slog.New(slog.NewJSONHandler(w, nil))}
}

// Answer is what the client was sent.
type Answer struct {
	Status int
	Bytes  int64
	// ErrorBody is the start of the body of an error answer, from which
	// a refusal's reason is read when no stage gave one.
	ErrorBody []byte
}

// Log writes the line of rec, whose answer was a, at now.
func (l *Logger) Log(rec *Record, a Answer, now time.Time) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	decision, reason := rec.decide(a)
	if l.deniedOnly && decision != Denied {
		return
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs, slog.String("request_id", rec.id))
	if rec.clientID {
		attrs = append(attrs, slog.Bool("request_id_from_client", true))
	}
	attrs = append(attrs,
		slog.String("remote", rec.remote),
		slog.String("method", rec.method),
		slog.String("path", rec.path),
	)
	if rec.authenticated {
		attrs = append(attrs, slog.Group("identity",
			slog.String("user", rec.user),
			slog.Any("groups", nonNil(rec.groups)),
			slog.String("method", rec.authMethod),
		))
	}
	if rec.policies != nil {
		attrs = append(attrs, slog.Any("policies", rec.policies), slog.Bool("allow_all", rec.allowAll))
	}
	attrs = appendList(attrs, "query", rec.query)
	attrs = appendList(attrs, "match", rec.match)
	attrs = appendList(attrs, "filter", rec.filter)
	attrs = appendList(attrs, "sent_query", rec.sentQuery)
	attrs = appendList(attrs, "sent_match", rec.sentMatch)
	attrs = appendList(attrs, "sent_filter", rec.sentFilter)
	attrs = append(attrs,
		slog.String("decision", decision),
		slog.String("reason", reason),
		slog.Int("status", a.Status),
	)
	if rec.upstreamStatus != 0 {
		attrs = append(attrs, slog.Int("upstream_status", rec.upstreamStatus))
	}
	attrs = append(attrs,
		slog.Float64("duration_seconds", now.Sub(rec.start).Seconds()),
		slog.Int64("bytes_out", a.Bytes),
	)
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

func appendList(attrs []slog.Attr, key string, vs []string) []slog.Attr {
	if len(vs) == 0 {
		return attrs
	}
	return append(attrs, slog.Any(key, vs))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// decide names the decision and its reason. The caller holds rec.mu.
func (rec *Record) decide(a Answer) (decision, reason string) {
	switch {
	case rec.denyReason != "":
		return Denied, rec.denyReason
	case rec.upstreamStatus != 0:
		return Allowed, rec.allowedReason()
	case a.Status >= 500:
		return Failed, errorMessage(a)
	case a.Status >= 400:
		return Denied, errorMessage(a)
	case !rec.authenticated:
		return Allowed, "public endpoint, no authentication needed"
	default:
		return Allowed, "answered by promgate itself"
	}
}

func (rec *Record) allowedReason() string {
	names := strings.Join(rec.policies, ", ")
	switch {
	case rec.allowAll:
		return "unrestricted by policy " + names + ": forwarded as asked"
	case names != "":
		return "restricted by policy " + names + ": forwarded limited to the policy's selectors"
	default:
		return "forwarded"
	}
}

// maxReason bounds a reason taken from an answer's body.
const maxReason = 300

// errorMessage reads the message of an error answer promgate wrote:
// Prometheus' envelope {"error":…}, Alertmanager's {"message":…} or
// JSON string, else the text itself.
func errorMessage(a Answer) string {
	body := a.ErrorBody
	var msg string
	var env struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	var s string
	switch {
	case json.Unmarshal(body, &env) == nil && env.Error != "":
		msg = env.Error
	case env.Message != "":
		msg = env.Message
	case json.Unmarshal(body, &s) == nil && s != "":
		msg = s
	default:
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(a.Status)
		if msg == "" {
			msg = "status " + strconv.Itoa(a.Status)
		}
	}
	if len(msg) > maxReason {
		msg = msg[:maxReason] + "…"
	}
	return msg
}

// Files are the audit files open in the process. A file stays open for the
// life of the process, whatever the reloads: a request still finishing
// under the configuration of before a reload writes to it safely. Reopen
// (on SIGUSR1) reopens every file by name, after logrotate moved it.
type Files struct {
	mu    sync.Mutex
	files map[string]*File
}

// NewFiles returns an empty set of files.
func NewFiles() *Files { return &Files{files: map[string]*File{}} }

// Open returns the file at path, opened for appending (created 0640).
func (fs *Files) Open(path string) (*File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.files[path]; ok {
		return f, nil
	}
	osf, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, f: osf}
	fs.files[path] = f
	return f, nil
}

// Reopen reopens every file; one that cannot be reopened keeps its old
// descriptor, and the errors are returned together.
func (fs *Files) Reopen() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var errs []string
	for _, f := range fs.files {
		if err := f.reopen(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("reopening audit files: %s", strings.Join(errs, "; "))
	}
	return nil
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// File is an audit file that can be reopened under its name.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Write writes one line; lines of concurrent requests do not interleave.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.f.Write(p)
}

func (f *File) reopen() error {
	nf, err := openAppend(f.path)
	if err != nil {
		return err
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	return old.Close()
}
