package prometheus

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/jsonscan"
	"github.com/promgate/promgate/internal/promql"
)

// Endpoints whose answers list objects with labels (alerts, rules, targets,
// metadata) are filtered: promgate reads the whole answer, keeps what the
// policy allows and replaces only data; status, warnings and infos stay as
// Prometheus sent them. The objects kept are copied byte for byte; only
// their label sets are decoded (see internal/jsonscan), so filtering costs
// little more than reading the answer.

var (
	alertsParams   = params{}
	rulesParams    = params{single: []string{"type", "exclude_alerts", "group_limit", "group_next_token"}, repeatable: []string{"rule_name[]", "rule_group[]", "group_name[]", "file[]", "match[]"}}
	targetsParams  = params{single: []string{"state", "scrapePool"}}
	tmetaParams    = params{single: []string{"match_target", "metric", "limit"}}
	metadataParams = params{single: []string{"limit", "limit_per_metric", "metric"}}
)

// labelSet is the predicate of a policy over a label set.
type labelSet = map[string]string

// fetched is an upstream answer read whole.
type fetched struct {
	code int
	raw  []byte
	buf  *bytes.Buffer // holds raw; back to the pool with release
}

func (f *fetched) release() {
	putBuffer(f.buf)
	f.buf, f.raw = nil, nil
}

// maxPooledBuffer bounds the buffers kept for the next answer.
const maxPooledBuffer = 4 << 20

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBuffer(b *bytes.Buffer) {
	if b != nil && b.Cap() <= maxPooledBuffer {
		b.Reset()
		buffers.Put(b)
	}
}

// fetch sends a rebuilt request upstream and reads its answer for
// filtering, uncompressed. The caller releases it.
func (a *API) fetch(r *http.Request, path string, vs url.Values) (*fetched, error) {
	req := rebuild(r, path, vs)
	// Ask for an identity-encoded answer: promgate must read it.
	req.Header.Del("Accept-Encoding")
	resp, err := a.up.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	buf := buffers.Get().(*bytes.Buffer)
	if resp.ContentLength > 0 && resp.ContentLength <= maxMergeBytes {
		buf.Grow(int(resp.ContentLength))
	}
	f := &fetched{code: resp.StatusCode, buf: buf}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxMergeBytes)); err != nil {
		f.release()
		return nil, apierror.New(apierror.Upstream, "reading upstream answer: %v", err)
	}
	f.raw = buf.Bytes()
	return f, nil
}

// envelope is what filterEnvelope made of an answer.
type envelope int

const (
	failed   envelope = iota // not a success: written with its status and errors only
	filtered                 // success: written with its data filtered
	rebuilt                  // to be written anew: see answerRebuilt
)

// The envelope of Prometheus' answers, and the members of one that is not
// a success passed on (its data may be anything: it is not filtered).
var (
	envelopeObject = jsonscan.NewObject("status", "data")
	errorMembers   = map[string]bool{"status": true, "errorType": true, "error": true, "warnings": true, "infos": true}
)

func notErrorMember(k string) bool { return !errorMembers[k] }

// filterEnvelope appends raw to out with its data filtered, in one pass:
// everything but data stays as the upstream wrote it. Status and data are
// read as encoding/json decodes them into apiResponse (the last of
// several winning); spelt otherwise ("Status", which encoding/json reads
// and other clients do not) they are refused (jsonscan.ErrSpelling). An
// answer that is not a success is written with its status and errors
// only. A syntax error anywhere is an unreadable answer (jsonscan.IsSyntax);
// an error of the data's shape counts only for a successful answer.
func filterEnvelope(out, raw []byte, filter dataFilter) ([]byte, envelope, error) {
	start := jsonscan.SkipSpace(raw, 0)
	if start >= len(raw) {
		return out, failed, jsonscan.ErrEnd
	}
	var end int
	var err error
	switch raw[start] {
	case 'n':
		// null decodes as an answer without status.
		if end, err = jsonscan.SkipLiteral(raw, start, "null"); err == nil && jsonscan.SkipSpace(raw, end) != len(raw) {
			err = jsonscan.SyntaxAt(raw, jsonscan.SkipSpace(raw, end), "after top-level value")
		}
		return append(out, "null"...), failed, err
	case '{':
	default:
		return out, failed, &jsonscan.SyntaxError{Msg: "the answer is not an object"}
	}
	var (
		status       string
		copied       = start
		mark         = len(out)
		seen, dupKey bool
		dataErr      error
		w            jsonscan.Walk
	)
	end, err = envelopeObject.Walk(raw, start, &w, func(field, vs int) (int, error) {
		if field == 0 {
			s, e, err := jsonscan.StringAt(raw, vs)
			if raw[vs] != 'n' {
				status = s
			}
			return e, err
		}
		if seen {
			return jsonscan.SkipValue(raw, vs)
		}
		seen = true
		out = append(out, raw[copied:vs]...)
		dmark := len(out)
		o, e, err := filter(out, raw[vs:])
		if err == nil || jsonscan.IsSyntax(err) {
			out, copied = o, vs+e
			return vs + e, err
		}
		// Not the data expected; the rest of it must still be JSON.
		dataErr, out = err, out[:dmark]
		e, err = jsonscan.SkipValue(raw, vs)
		copied = e
		return e, err
	})
	// A walk that ended with an error of shape read the whole object: what
	// follows must still be nothing, as for encoding/json.
	if !jsonscan.IsSyntax(err) && jsonscan.SkipSpace(raw, end) != len(raw) {
		err = jsonscan.SyntaxAt(raw, jsonscan.SkipSpace(raw, end), "after top-level value")
	}
	if err == nil && !w.Dup {
		dupKey = repeatedKey(raw, w.Spans)
	}
	switch {
	case err == jsonscan.ErrSpelling:
		return out[:mark], failed, err
	case err != nil && !jsonscan.IsSyntax(err):
		// encoding/json could not decode the envelope (a status that
		// is not a string).
		return out[:mark], failed, &jsonscan.SyntaxError{Msg: err.Error()}
	case err != nil:
		return out[:mark], failed, err
	case status != "success":
		out, err = jsonscan.WriteObject(out[:mark], raw, w.Spans, notErrorMember, nil)
		return out, failed, err
	case w.Dup || dupKey:
		return out, rebuilt, nil
	case !seen:
		return out, filtered, errMissing
	case dataErr != nil:
		return out, filtered, dataErr
	}
	return append(out, raw[copied:]...), filtered, nil
}

// repeatedKey reports whether two members of an envelope have keys that
// encoding/json reads as one (equal under case folding): the envelope is
// then written anew (answerRebuilt), each key once.
func repeatedKey(raw []byte, ms []jsonscan.Span) bool {
	key := func(m jsonscan.Span) []byte {
		if !m.Escaped {
			return raw[m.KS+1 : m.KE-1]
		}
		k, _ := jsonscan.StringValue(raw, m.KS, m.KE, true)
		return []byte(k)
	}
	for i := range ms {
		for j := range i {
			if bytes.EqualFold(key(ms[i]), key(ms[j])) {
				return true
			}
		}
	}
	return false
}

// filtered runs an endpoint whose answer is filtered: fetch, then, on
// success, replace data with what filter makes of it.
func (a *API) filtered(w http.ResponseWriter, r *http.Request, path string, vs url.Values, filter dataFilter) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	f, err := a.fetch(r.WithContext(ctx), path, vs)
	if err != nil {
		return err
	}
	defer f.release()
	return a.answerFiltered(w, r, path, f, filter)
}

func (a *API) answerFiltered(w http.ResponseWriter, r *http.Request, path string, f *fetched, filter dataFilter) error {
	buf := buffers.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	buf.Grow(len(f.raw))
	out, env, err := filterEnvelope(buf.Bytes()[:0], f.raw, filter)
	var ae *apierror.Error
	switch {
	case errors.As(err, &ae):
		return err // the client's (a page token that names no group)
	case err != nil && jsonscan.IsSyntax(err):
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", f.code)
	case err != nil:
		return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
	case env == failed:
		writeJSON(w, r, f.code, out)
	case env == rebuilt:
		return a.answerRebuilt(w, r, path, f, filter)
	default:
		writeJSON(w, r, http.StatusOK, out)
	}
	return nil
}

// answerRebuilt handles an envelope with a key given twice (several data
// members, keys equal under case folding): see rebuildEnvelope.
func (a *API) answerRebuilt(w http.ResponseWriter, r *http.Request, path string, f *fetched, filter dataFilter) error {
	out, err := rebuildEnvelope(f.raw, filter)
	var ae *apierror.Error
	switch {
	case errors.As(err, &ae):
		return err
	case err != nil && jsonscan.IsSyntax(err):
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", f.code)
	case err != nil:
		return apierror.New(apierror.Upstream, "unexpected upstream answer on %s: %v", path, err)
	}
	writeJSON(w, r, http.StatusOK, out)
	return nil
}

// rebuildEnvelope decodes a successful answer and encodes it again, so
// that each key is there once and only the filtered data remains.
func rebuildEnvelope(raw []byte, filter dataFilter) ([]byte, error) {
	var env apiResponse
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, &jsonscan.SyntaxError{Msg: err.Error()}
	}
	if len(env.Data) == 0 {
		return nil, errMissing
	}
	data, _, err := filter(nil, env.Data)
	if err != nil {
		return nil, err
	}
	env.Data = data
	return json.Marshal(env)
}

// envelopeData returns the data of a successful answer, for the label
// values metadata reads, or else the answer to pass on (status and errors
// only).
func envelopeData(raw []byte) (data, failure []byte, err error) {
	var at, end int
	out, env, err := filterEnvelope(nil, raw, func(out, b []byte) ([]byte, int, error) {
		e, err := jsonscan.SkipValue(b, 0)
		at, end = len(raw)-len(b), e
		return out, e, err
	})
	switch {
	case err != nil:
		return nil, nil, err
	case env == failed:
		return nil, out, nil
	case env == rebuilt:
		var ar apiResponse
		if err := json.Unmarshal(raw, &ar); err != nil {
			return nil, nil, err
		}
		return ar.Data, nil, nil
	}
	return raw[at : at+end], nil, nil
}

// writeJSON answers body, gzip-compressed when the client accepts it.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if len(body) > 1024 && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(code)
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		_, _ = gz.Write(body)
		_ = gz.Close()
		gz.Reset(io.Discard)
		gzipWriters.Put(gz)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// gzipWriters are reused: a new writer allocates about a megabyte.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") {
			return true
		}
	}
	return false
}

// filterHandler serves an endpoint whose answer is filtered by filter
// under the caller's predicate; alerts and rules use the alert predicate
// (which may add the PromAuthProxy name rule), targets the policy's.
func filterHandler(filter func(out, data []byte, allow visibleFunc) ([]byte, int, error), forAlerts bool) handlerFunc {
	return func(a *API, w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
		vs, err := readForm(r, p, a.maxBody)
		if err != nil {
			return err
		}
		allow := allowFunc(enf)
		if forAlerts {
			allow = a.alertAllow(r, enf)
		}
		return a.filtered(w, r, path, vs, func(out, b []byte) ([]byte, int, error) {
			return filter(out, b, allow)
		})
	}
}

func (a *API) targetsMetadata(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	limit, err := takeLimit(vs)
	if err != nil {
		return err
	}
	allow := allowFunc(enf)
	return a.filtered(w, r, path, vs, func(out, b []byte) ([]byte, int, error) {
		return filterTargetsMetadataData(out, b, allow, limit)
	})
}

// metadata keeps the metadata of metric names the tenant has series of:
// the names come from the label values of __name__ under the policy.
func (a *API) metadata(w http.ResponseWriter, r *http.Request, path string, p params, enf *promql.Enforcer) error {
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	limit, err := takeLimit(vs)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	names := url.Values{}
	if err := a.enforceMatch(r, names, enf); err != nil {
		return err
	}
	get := r.Clone(ctx)
	get.Method = http.MethodGet
	f, err := a.fetch(get, "/api/v1/label/__name__/values", names)
	if err != nil {
		return err
	}
	defer f.release()
	data, failure, err := envelopeData(f.raw)
	if err != nil {
		return apierror.New(apierror.Upstream, "upstream answered status %d with an unreadable body", f.code)
	}
	if failure != nil {
		writeJSON(w, r, f.code, failure)
		return nil
	}
	var own []string
	if err := json.Unmarshal(data, &own); err != nil {
		return apierror.New(apierror.Upstream, "unexpected upstream answer: %v", err)
	}
	mine := make(map[string]bool, len(own))
	for _, n := range own {
		mine[n] = true
	}
	return a.filtered(w, r.WithContext(ctx), path, vs, func(out, b []byte) ([]byte, int, error) {
		end, err := jsonscan.SkipValue(b, 0)
		if err != nil {
			return out, end, err
		}
		var d map[string]json.RawMessage
		if err := json.Unmarshal(b[:end], &d); err != nil {
			return out, end, err
		}
		kept := 0
		for _, name := range sortedNames(d) {
			if !mine[name] || (limit > 0 && kept >= limit) {
				delete(d, name)
				continue
			}
			kept++
		}
		data, err := json.Marshal(d)
		return append(out, data...), end, err
	})
}

func allowFunc(enf *promql.Enforcer) visibleFunc { return enf.VisibleFunc }

// alertAllow decides on alerts; with the PromAuthProxy-compatible option,
// an alert whose name starts with "<user>: " is also the user's.
func (a *API) alertAllow(r *http.Request, enf *promql.Enforcer) visibleFunc {
	if !a.opts.AlertNamePrefix {
		return enf.VisibleFunc
	}
	id, _ := identity.FromContext(r.Context())
	prefix := id.User + ": "
	return func(get func(string) string) bool {
		return enf.VisibleFunc(get) || (id.User != "" && strings.HasPrefix(get("alertname"), prefix))
	}
}

// takeLimit removes limit from the parameters sent upstream: a limit applied
// before filtering would count other tenants' entries.
func takeLimit(vs url.Values) (int, error) {
	s := vs.Get("limit")
	vs.Del("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, apierror.New(apierror.BadData, "invalid parameter \"limit\": %q is not a number", s)
	}
	return n, nil
}

func sortedNames(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
