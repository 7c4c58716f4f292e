package prometheus

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/limits"
)

// checkGuards applies the identity's query guards (package limits) to a
// query or range query whose text the enforcer has accepted, before
// anything goes upstream. A refusal is 422 (Prometheus' status for a query
// it will not run), naming the limit.
func checkGuards(r *http.Request, path string, vs url.Values) error {
	l := limits.FromContext(r.Context())
	if !l.Guards() {
		return nil
	}
	now := time.Now()
	q := limits.Query{Text: vs.Get("query"), Now: now, Start: now, End: now}
	switch path {
	case "/api/v1/query":
		if t := vs.Get("time"); t != "" {
			ts, err := parseTime("time", t)
			if err != nil {
				return err
			}
			q.Start, q.End = ts, ts
		}
	case "/api/v1/query_range":
		q.Range = true
		var err error
		if q.Start, err = parseTime("start", vs.Get("start")); err != nil {
			return err
		}
		if q.End, err = parseTime("end", vs.Get("end")); err != nil {
			return err
		}
		if q.Step, err = parseDuration("step", vs.Get("step")); err != nil {
			return err
		}
	default:
		return nil
	}
	if err := l.CheckQuery(q); err != nil {
		var le *limits.Error
		if errors.As(err, &le) {
			return apierror.Wrap(apierror.Execution, err)
		}
		return apierror.New(apierror.BadData, "invalid parameter \"query\": %v", err)
	}
	return nil
}

// CheckGuards applies the query guards of r's identity (package limits) to
// a query of an allow_all identity, which goes upstream as asked: the
// parameters are read as for a restricted identity, and a body is left for
// the upstream to read.
func (a *API) CheckGuards(r *http.Request, path string) error {
	if !limits.FromContext(r.Context()).Guards() {
		return nil
	}
	var p params
	switch path {
	case "/api/v1/query":
		p = queryParams
	case "/api/v1/query_range":
		p = rangeParams
	default:
		return nil
	}
	if r.Method == http.MethodPost && r.Body != nil && r.Body != http.NoBody {
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, a.maxBody))
		if err != nil {
			return apierror.New(apierror.TooLarge, "request body larger than %d bytes", a.maxBody)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		defer func() { r.Body = io.NopCloser(bytes.NewReader(body)) }()
	}
	vs, err := readForm(r, p, a.maxBody)
	if err != nil {
		return err
	}
	return checkGuards(r, path, vs)
}

// parseTime reads a time as Prometheus does: Unix seconds or RFC 3339. A
// value promgate cannot read is refused with Prometheus' words, so no
// guard is skipped by a form only the upstream understands.
func parseTime(name, s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(t) && !math.IsInf(t, 0) {
		sec, frac := math.Modf(t)
		return time.Unix(int64(sec), int64(math.Round(frac*1000))*int64(time.Millisecond)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, apierror.New(apierror.BadData, "invalid parameter %q: cannot parse %q to a valid timestamp", name, s)
}

// parseDuration reads a step as Prometheus does: seconds or a duration.
func parseDuration(name, s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(d) && !math.IsInf(d, 0) {
		return time.Duration(d * float64(time.Second)), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, apierror.New(apierror.BadData, "invalid parameter %q: cannot parse %q to a valid duration", name, s)
}
