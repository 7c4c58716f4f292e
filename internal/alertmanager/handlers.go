package alertmanager

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/alertmanager/matcher/compat"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/audit"
)

// Parameters of the GET endpoints, as Alertmanager reads them. Others are
// not forwarded (the UI adds some of its own, such as group).
var (
	alertsParams = []string{"filter", "active", "silenced", "inhibited", "unprocessed", "receiver"}
	groupsParams = []string{"filter", "active", "silenced", "inhibited", "receiver"}
	silenceQuery = []string{"filter"}
)

// query returns the request's parameters that Alertmanager reads for the
// endpoint. Every filter must be one matcher that Alertmanager's parser
// accepts, a receiver a regex it compiles (a bad request does not reach
// Alertmanager). These parameters only narrow Alertmanager's answer, which
// promgate filters anyway, so they are forwarded as given.
func query(r *http.Request, names []string) (url.Values, error) {
	in, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apierror.New(apierror.BadData, "invalid query string: %v", err)
	}
	out := url.Values{}
	for _, n := range names {
		if vs, ok := in[n]; ok {
			out[n] = vs
		}
	}
	for _, f := range out["filter"] {
		if _, err := compat.Matcher(f, "api"); err != nil {
			return nil, apierror.Wrap(apierror.BadData, err)
		}
	}
	for _, rcv := range out["receiver"] {
		if _, err := regexp.Compile("^(?:" + rcv + ")$"); err != nil {
			return nil, apierror.New(apierror.BadData, "failed to parse receiver param: %v", err)
		}
	}
	audit.From(r.Context()).SetClient(out)
	return out, nil
}

func (a *API) getAlerts(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	return a.getListing(w, r, e, path, alertsParams, func(b []byte) (listing, error) { return e.FilterAlerts(b) })
}

func (a *API) getAlertGroups(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	return a.getListing(w, r, e, path, groupsParams, func(b []byte) (listing, error) { return e.FilterAlertGroups(b) })
}

// listing is an alert listing filtered for a tenant (Alerts, AlertGroups).
type listing interface {
	Refs() Refs
	Encode(Visible) ([]byte, error)
}

// getListing answers an alert listing: fetched with the client's
// parameters of params, filtered, and its references to what the tenant
// may not see removed.
func (a *API) getListing(w http.ResponseWriter, r *http.Request, e *Enforcer, path string, params []string,
	filter func([]byte) (listing, error)) error {
	q, err := query(r, params)
	if err != nil {
		return err
	}
	// Alertmanager ANDs its filters: the client's and the policy's.
	q["filter"] = append(q["filter"], e.UpstreamFilters()...)
	audit.From(r.Context()).SetSentFilter(q["filter"])
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	ans, err := a.call(ctx, http.MethodGet, path, q, nil)
	defer ans.release() // after the answer, which refers to it, is written
	if err != nil || ans.status != http.StatusOK {
		return a.relay(w, ans, err)
	}
	l, err := filter(ans.body)
	if err != nil {
		return a.unreadable(path, err)
	}
	v, err := a.visible(ctx, e, l.Refs())
	if err != nil {
		return err
	}
	body, err := l.Encode(v)
	if err != nil {
		return a.unreadable(path, err)
	}
	writeBody(w, ans, body)
	return nil
}

// visible looks up which of the silences and alerts refs names the tenant
// may see; only what refs names is fetched.
func (a *API) visible(ctx context.Context, e *Enforcer, refs Refs) (Visible, error) {
	var v Visible
	if len(refs.Silences) > 0 {
		ans, err := a.call(ctx, http.MethodGet, "/api/v2/silences", nil, nil)
		if err != nil {
			return v, err
		}
		defer ans.release()
		if ans.status != http.StatusOK {
			return v, a.unexpected("/api/v2/silences", ans)
		}
		if v.Silences, err = e.OwnedSilenceIDs(ans.body); err != nil {
			return v, a.unreadable("/api/v2/silences", err)
		}
	}
	if len(refs.Alerts) > 0 {
		// Without parameters, every alert: active, silenced, inhibited
		// and unprocessed.
		ans, err := a.call(ctx, http.MethodGet, "/api/v2/alerts", url.Values{"filter": e.UpstreamFilters()}, nil)
		if err != nil {
			return v, err
		}
		defer ans.release()
		if ans.status != http.StatusOK {
			return v, a.unexpected("/api/v2/alerts", ans)
		}
		l, err := e.FilterAlerts(ans.body)
		if err != nil {
			return v, a.unreadable("/api/v2/alerts", err)
		}
		v.Alerts = l.Fingerprints()
	}
	return v, nil
}

func (a *API) postAlerts(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	body, err := a.readJSON(r)
	if err != nil {
		return err
	}
	alerts, err := e.CheckPostableAlerts(body)
	if err != nil {
		return forbidden(err)
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	cfg, err := a.config(ctx)
	if err != nil {
		// Fail closed: without the inhibit rules, promgate cannot tell
		// whether the alerts would mute other tenants'.
		return err
	}
	if err := e.CheckInhibitions(cfg, alerts); err != nil {
		return forbidden(err)
	}
	out, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	ans, err := a.call(ctx, http.MethodPost, path, nil, out)
	return a.relay(w, ans, err)
}

func (a *API) getSilences(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	q, err := query(r, silenceQuery)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	ans, err := a.call(ctx, http.MethodGet, path, q, nil)
	if err != nil || ans.status != http.StatusOK {
		return a.relay(w, ans, err)
	}
	body, err := e.FilterSilences(ans.body)
	if err != nil {
		return a.unreadable(path, err)
	}
	writeBody(w, ans, body)
	return nil
}

// silenceID returns the ID of /api/v2/silence/ID, refused as Alertmanager
// refuses an ID that is not a UUID.
func silenceID(path string) (string, error) {
	id := strings.TrimPrefix(path, "/api/v2/silence/")
	if !uuidPattern.MatchString(id) {
		return "", newSchemaError(http.StatusUnprocessableEntity, codeInvalidType, "silenceID in path must be of type uuid: %q", id)
	}
	return id, nil
}

// errSilenceNotFound answers a silence that does not exist or is not the
// tenant's: the same answer for both, so that a tenant cannot learn that
// another tenant's silence exists. (Alertmanager's own 404 has an empty
// body; amtool does not read it.)
var errSilenceNotFound = apierror.New(apierror.NotFound, "silence not found")

// ownedSilence fetches a silence and reports whether it exists and is the
// tenant's. A silence's matchers never change under its ID (Alertmanager
// replaces a silence whose matchers are updated by a new one), so the
// answer holds for a request that follows.
func (a *API) ownedSilence(ctx context.Context, e *Enforcer, id string) (*answer, bool, error) {
	p := "/api/v2/silence/" + id
	ans, err := a.call(ctx, http.MethodGet, p, nil, nil)
	if err != nil {
		return nil, false, err
	}
	switch ans.status {
	case http.StatusOK:
		body, owned, err := e.OwnsSilence(ans.body)
		if err != nil {
			return nil, false, a.unreadable(p, err)
		}
		ans.body = body // each decided key once, as it was decided on
		return ans, owned, nil
	case http.StatusNotFound:
		return ans, false, nil
	}
	return nil, false, a.unexpected(p, ans)
}

func (a *API) getSilence(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	id, err := silenceID(path)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	ans, owned, err := a.ownedSilence(ctx, e, id)
	if err != nil {
		return err
	}
	if !owned {
		return errSilenceNotFound
	}
	writeBody(w, ans, ans.body)
	return nil
}

// notYours refuses a change to a silence that does not exist or is not the
// tenant's, with one message for both (see errSilenceNotFound).
func notYours(id string, e *Enforcer) error {
	return apierror.New(apierror.Forbidden,
		"silence %s does not exist or is not yours: only silences whose matchers imply %s can be changed", id, e.describe())
}

func (a *API) deleteSilence(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	id, err := silenceID(path)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	_, owned, err := a.ownedSilence(ctx, e, id)
	if err != nil {
		return err
	}
	if !owned {
		return notYours(id, e)
	}
	ans, err := a.call(ctx, http.MethodDelete, "/api/v2/silence/"+id, nil, nil)
	return a.relay(w, ans, err)
}

func (a *API) postSilences(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	body, err := a.readJSON(r)
	if err != nil {
		return err
	}
	s, ms, err := ParsePostableSilence(body)
	if err != nil {
		return err
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	if s.ID != "" {
		// An update: the silence it replaces must be the tenant's too.
		_, owned, err := a.ownedSilence(ctx, e, s.ID)
		if err != nil {
			return err
		}
		if !owned {
			return notYours(s.ID, e)
		}
	}
	enforced, err := e.Inject(ms)
	if err != nil {
		return forbidden(err)
	}
	for _, m := range enforced[len(ms):] {
		s.Matchers = append(s.Matchers, fromAlertmanager(m))
	}
	out, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ans, err := a.call(ctx, http.MethodPost, path, nil, out)
	return a.relay(w, ans, err)
}

func (a *API) getStatus(w http.ResponseWriter, r *http.Request, _ *Enforcer, path string) error {
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	ans, err := a.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil || ans.status != http.StatusOK {
		return a.relay(w, ans, err)
	}
	body, err := RedactStatus(ans.body)
	if err != nil {
		return a.unreadable(path, err)
	}
	writeBody(w, ans, body)
	return nil
}

func (a *API) getReceivers(w http.ResponseWriter, r *http.Request, e *Enforcer, path string) error {
	if a.opts.Receivers == ReceiversNone {
		writeBody(w, &answer{header: http.Header{}}, []byte("[]"))
		return nil
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	ans, err := a.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil || ans.status != http.StatusOK || a.opts.Receivers == ReceiversAll {
		return a.relay(w, ans, err)
	}
	keep := map[string]bool{}
	if cfg, err := a.config(ctx); err != nil {
		// Fail closed, but keep the UI working: an empty list.
		a.logger.Warn("alertmanager configuration unreadable; no receivers shown", "err", err)
	} else {
		keep = e.Receivers(cfg)
	}
	body, err := FilterReceivers(ans.body, keep)
	if err != nil {
		return a.unreadable(path, err)
	}
	writeBody(w, ans, body)
	return nil
}

// config fetches and parses Alertmanager's configuration. It is not
// cached: behind a multi-tenant Alertmanager (Mimir, Cortex) each tenant's
// configuration is another, chosen by the tenancy header.
func (a *API) config(ctx context.Context) (*Config, error) {
	const p = "/api/v2/status"
	ans, err := a.call(ctx, http.MethodGet, p, nil, nil)
	if err != nil {
		return nil, err
	}
	if ans.status != http.StatusOK {
		return nil, a.unexpected(p, ans)
	}
	text, err := StatusConfig(ans.body)
	if err != nil {
		return nil, a.unreadable(p, err)
	}
	cfg, err := ParseConfig(text)
	if err != nil {
		return nil, a.unreadable(p, err)
	}
	return cfg, nil
}

// static passes the UI and its files, which hold no data.
func (a *API) static(w http.ResponseWriter, r *http.Request, _ *Enforcer, path string) error {
	out := r.Clone(r.Context())
	out.URL.Path = path
	out.URL.RawPath = ""
	out.Body = http.NoBody
	out.ContentLength = 0
	a.up.ServeHTTP(w, out)
	return nil
}

// forbidden types the enforcement errors as 403.
func forbidden(err error) error {
	if errors.Is(err, ErrNotAllowed) || errors.Is(err, ErrInhibits) || errors.Is(err, ErrContradicts) || errors.Is(err, ErrNotOwned) {
		return apierror.Wrap(apierror.Forbidden, err)
	}
	return err
}

// readJSON reads a POST body, which must be JSON, as Alertmanager requires.
func (a *API) readJSON(r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, newSchemaError(http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType,
			"unsupported media type %q, only [application/json] are allowed", ct)
	}
	if r.ContentLength > a.opts.MaxBodyBytes {
		return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", a.opts.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, a.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierror.New(apierror.TooLarge, "request body larger than %d bytes", a.opts.MaxBodyBytes)
		}
		return nil, apierror.New(apierror.BadData, "reading request body: %v", err)
	}
	return body, nil
}

// answer is an upstream answer read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
	buf    *bytes.Buffer // holds body; see release
}

// maxAnswerBytes bounds an upstream answer that promgate reads.
const maxAnswerBytes = 512 << 20

// call sends one request to Alertmanager and reads the answer. The
// request carries no header of the client's (no credentials, no
// Accept-Encoding: the answer is asked for uncompressed, to be filtered). ctx must
// descend from the client request's context, which holds the identity
// that tenancy headers are made from.
func (a *API) call(ctx context.Context, method, path string, q url.Values, body []byte) (*answer, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "/", rd)
	if err != nil {
		return nil, err
	}
	req.URL = &url.URL{Path: path, RawQuery: q.Encode()}
	// Without Accept-Encoding any coding is acceptable (RFC 9110); the
	// answer is to be read, so ask for it plain.
	req.Header.Set("Accept-Encoding", "identity")
	if id := audit.From(ctx).ID(); id != "" {
		req.Header.Set(audit.RequestIDHeader, id)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.up.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var src io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		// Not asked for, but an Alertmanager behind a compressing proxy
		// may send it anyway.
		gz, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, a.unreadable(path, err)
		}
		defer gz.Close()
		src = gz
		resp.Header.Del("Content-Encoding")
	}
	buf := answerBuffers.Get().(*bytes.Buffer)
	if n := resp.ContentLength; n > 0 && n <= maxAnswerBytes {
		buf.Grow(int(n))
	}
	ans := &answer{status: resp.StatusCode, header: resp.Header, buf: buf}
	if _, err := buf.ReadFrom(io.LimitReader(src, maxAnswerBytes+1)); err != nil {
		ans.release()
		if ctx.Err() != nil {
			return nil, apierror.Wrap(apierror.Timeout, fmt.Errorf("upstream timed out"))
		}
		return nil, a.unreadable(path, err)
	}
	if buf.Len() > maxAnswerBytes {
		ans.release()
		return nil, a.unreadable(path, fmt.Errorf("answer larger than %d bytes", maxAnswerBytes))
	}
	ans.body = buf.Bytes()
	return ans, nil
}

// answerBuffers hold the answers read, for the next ones: a listing of
// every tenant's alerts is read on each request, and reading it into fresh
// memory made the garbage collector a fifth of promgate's CPU.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledAnswer bounds the buffers kept.
const maxPooledAnswer = 4 << 20

// release gives the answer's buffer back; nothing may use body after. An
// answer not released is left to the garbage collector.
func (ans *answer) release() {
	if ans == nil || ans.buf == nil {
		return
	}
	if ans.buf.Cap() <= maxPooledAnswer {
		ans.buf.Reset()
		answerBuffers.Put(ans.buf)
	}
	ans.buf, ans.body = nil, nil
}

// relay sends Alertmanager's answer (its own success or error) to the
// client, or returns err.
func (a *API) relay(w http.ResponseWriter, ans *answer, err error) error {
	if err != nil {
		return err
	}
	if ans.status >= 400 && len(bytes.TrimSpace(ans.body)) == 0 {
		// No error goes out with an empty body; Alertmanager's 404s have
		// one.
		return apierror.New(statusType(ans.status), "%s", strings.ToLower(http.StatusText(ans.status)))
	}
	writeBody(w, ans, ans.body)
	return nil
}

// statusType is the apierror type of an upstream error status.
func statusType(status int) apierror.Type {
	switch status {
	case http.StatusBadRequest:
		return apierror.BadData
	case http.StatusNotFound:
		return apierror.NotFound
	case http.StatusForbidden:
		return apierror.Forbidden
	}
	return apierror.Upstream
}

// writeBody writes body with ans' status and Content-Type.
func writeBody(w http.ResponseWriter, ans *answer, body []byte) {
	h := w.Header()
	ct := ans.header.Get("Content-Type")
	if ct == "" && len(body) > 0 {
		ct = "application/json"
	}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := ans.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// unreadable is an Alertmanager answer promgate could not read: a 502, the
// cause logged, not shown.
func (a *API) unreadable(path string, err error) error {
	a.logger.Warn("alertmanager answer unreadable", "path", path, "err", err)
	return apierror.New(apierror.Upstream, "unexpected answer from Alertmanager")
}

// unexpected is an error status on a request promgate made on its own.
func (a *API) unexpected(path string, ans *answer) error {
	a.logger.Warn("alertmanager request failed", "path", path, "status", ans.status, "body", truncate(ans.body, 200))
	return apierror.New(apierror.Upstream, "Alertmanager answered %d to %s", ans.status, path)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
