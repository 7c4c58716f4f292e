package prometheus

import (
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// remoteWrite accepts a remote write request (1.0 or 2.0) only when every
// series satisfies the policy and the WriteLimits; then the request is
// forwarded as it came (same bytes and headers) and the upstream's answer
// passed back with its headers (2.0's X-Prometheus-Remote-Write-*-Written
// among them). One series outside the policy refuses the whole request
// with 403, naming it, and nothing is forwarded.
//
// Metadata entries of 1.0 carry a metric family name and no labels. An
// entry is accepted when the policy allows some series of that family (see
// allowsFamily): writing it could not reveal or affect anything the tenant
// could not write as series. Prometheus sends metadata in requests of
// their own, so requiring the family's series in the same request would
// refuse every one of them. 2.0 carries metadata in each series, checked
// with it.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	msg, err := writeMessage(r.Header)
	if err != nil {
		return err
	}
	lim := a.opts.Write
	body, raw, err := readWriteBody(r, lim, encodingSnappy, encodingSnappy)
	if err != nil {
		return err
	}
	// Given back once the upstream answered: nothing refers to them then
	// (the checks copy what they keep; the upstream writes the body
	// before it reads the answer).
	defer putWriteBuffers(body, raw)
	if msg == writeV2Message {
		err = checkWriteV2(raw, enf, lim)
	} else {
		err = checkWriteV1(raw, enf, lim)
	}
	if err != nil {
		return err
	}
	// Asked after the checks: a refused request costs the upstream
	// nothing.
	if msg == writeV2Message && a.upstreamWithoutWriteV2(r) {
		return apierror.New(apierror.UnsupportedMedia, "%s protobuf message is not accepted by this server; only accepts %s", writeV2Message, writeV1Message)
	}
	a.up.ServeHTTP(w, remoteRequest(r, path, body))
	return nil
}

// The protobuf messages of remote write, as the proto parameter of the
// Content-Type names them.
const (
	writeV1Message = "prometheus.WriteRequest"
	writeV2Message = "io.prometheus.write.v2.Request"
)

// writeContentTypes are the Content-Types read as each message, as
// Prometheus reads them. The body is forwarded with the client's
// Content-Type, so promgate must read it exactly as the upstream will: any
// other spelling (a space after the ';', parameters in another order) is
// refused rather than guessed at.
var writeContentTypes = map[string]string{
	"":               writeV1Message,
	protoContentType: writeV1Message,
	protoContentType + ";proto=" + writeV1Message: writeV1Message,
	protoContentType + ";proto=" + writeV2Message: writeV2Message,
}

// writeMessage is the message a remote write request's headers announce.
// Anything else is refused with 415, as Prometheus refuses a message it
// does not accept, naming those it does; a sender of 2.0 may then fall
// back to 1.0.
func writeMessage(h http.Header) (string, error) {
	cts := h.Values("Content-Type")
	ct := ""
	if len(cts) > 0 {
		ct = strings.TrimSpace(cts[0])
	}
	if msg, ok := writeContentTypes[ct]; ok && len(cts) <= 1 {
		return msg, nil
	}
	return "", apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: this server accepts %s;proto=%s and %s;proto=%s (remote write 2.0)",
		strings.Join(cts, ", "), protoContentType, writeV1Message, protoContentType, writeV2Message)
}

// upstreamWithoutWriteV2 reports whether the upstream is known to be a
// Prometheus older than 3.0. Those read any body as remote write 1.0: a
// 2.0 request, whose fields 1.0 does not define, would be answered 204
// and nothing written, so it is refused with 415 before, which tells the
// sender to fall back to 1.0. An upstream of unknown version is sent the
// request and answers for itself.
func (a *API) upstreamWithoutWriteV2(r *http.Request) bool {
	c := &a.caps
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load(a, r)
	return c.known && !c.latest && c.major > 0 && c.major < 3
}

// checkSeries decides on the labels of one series (sorted): well formed,
// within lim, inside the policy.
func checkSeries(ls labels.Labels, enf *promql.Enforcer, lim WriteLimits) error {
	// With two values for one name, the policy could check one and the
	// upstream keep the other.
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		return apierror.New(apierror.BadData, "series %s has label %q more than once", shortLabels(ls), name)
	}
	if err := checkLabels(ls, lim); err != nil {
		return err
	}
	if !enf.Allows(ls) {
		return apierror.New(apierror.Forbidden, "series %s is outside the policy: the write request is refused", ls.String())
	}
	return nil
}

// checkExemplarLabels bounds the labels (sorted) of an exemplar of the
// series ls. They are not checked against the policy: they name no series
// (a trace ID, a span ID), are stored with the series' exemplar and are
// read only through it, with the series, which the policy decided on.
func checkExemplarLabels(el, series labels.Labels, lim WriteLimits) error {
	what := func() string { return "an exemplar of series " + shortLabels(series) }
	if name, dup := el.HasDuplicateLabelNames(); dup {
		return apierror.New(apierror.BadData, "%s has label %q more than once", what(), name)
	}
	return labelLimits(el, lim, what)
}

// familySuffixes are the suffixes of the series of a metric family
// (histograms, summaries, counters, info metrics in OpenMetrics).
var familySuffixes = []string{"", "_total", "_created", "_bucket", "_sum", "_count", "_gcount", "_gsum", "_info"}

// allowsFamily reports whether the policy allows some series of the metric
// family name.
func allowsFamily(enf *promql.Enforcer, name string) bool {
	for _, s := range familySuffixes {
		if enf.AllowsName(name + s) {
			return true
		}
	}
	return false
}
