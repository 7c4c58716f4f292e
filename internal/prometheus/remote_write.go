package prometheus

import (
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// remoteWrite accepts a remote write 1.0 request only when every series
// satisfies the policy; then the request is forwarded as it came (same
// bytes and headers). One series outside the policy refuses the whole
// request with 403, naming it, and nothing is forwarded.
//
// Metadata entries carry a metric family name and no labels. An entry is
// accepted when the policy allows some series of that family (see
// allowsFamily): writing it could not reveal or affect anything the tenant
// could not write as series. Prometheus sends metadata in requests of
// their own, so requiring the family's series in the same request would
// refuse every one of them.
func (a *API) remoteWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	if err := checkWriteHeaders(r.Header); err != nil {
		return err
	}
	body, raw, err := readSnappyBody(r)
	if err != nil {
		return err
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return apierror.New(apierror.BadData, "invalid remote write request: %v", err)
	}
	if err := checkWrite(&req, enf); err != nil {
		return err
	}
	a.up.ServeHTTP(w, remoteRequest(r, path, body))
	return nil
}

// writeV1ContentTypes are the Content-Types every receiver reads as a
// remote write 1.0 request. The body is forwarded with the client's
// Content-Type, so promgate must read it exactly as the upstream will: any
// other spelling is refused rather than guessed at.
var writeV1ContentTypes = []string{"", protoContentType, protoContentType + ";proto=prometheus.WriteRequest"}

func checkWriteHeaders(h http.Header) error {
	if err := checkSnappyEncoding(h); err != nil {
		return err
	}
	cts := h.Values("Content-Type")
	ct := ""
	if len(cts) > 0 {
		ct = strings.TrimSpace(cts[0])
	}
	if len(cts) <= 1 && slices.Contains(writeV1ContentTypes, ct) {
		return nil
	}
	if strings.Contains(ct, "io.prometheus.write.v2.Request") {
		return apierror.New(apierror.UnsupportedMedia, "remote write 2.0 (Content-Type %q) is not supported: send remote write 1.0 (protobuf_message: prometheus.WriteRequest)", ct)
	}
	return apierror.New(apierror.UnsupportedMedia, "unsupported Content-Type %q: remote write needs %s (remote write 1.0)", strings.Join(cts, ", "), protoContentType)
}

// checkWrite is the policy decision on a decoded write request.
func checkWrite(req *prompb.WriteRequest, enf *promql.Enforcer) error {
	// Fields promgate does not know (remote write 2.0's, sent as 1.0) would
	// reach the upstream unchecked.
	if len(req.XXX_unrecognized) > 0 {
		return apierror.New(apierror.BadData, "remote write request has fields remote write 1.0 does not define")
	}
	b := labels.NewScratchBuilder(0)
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		if len(ts.XXX_unrecognized) > 0 {
			return apierror.New(apierror.BadData, "series %d of the remote write request has fields remote write 1.0 does not define", i)
		}
		b.Reset()
		for _, l := range ts.Labels {
			if len(l.XXX_unrecognized) > 0 {
				return apierror.New(apierror.BadData, "a label of series %d of the remote write request has fields remote write 1.0 does not define", i)
			}
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		ls := b.Labels()
		// With two values for one name, the policy could check one and the
		// upstream keep the other.
		if name, dup := ls.HasDuplicateLabelNames(); dup {
			return apierror.New(apierror.BadData, "series %s has label %q more than once", ls.String(), name)
		}
		if !enf.Allows(ls) {
			return apierror.New(apierror.Forbidden, "series %s is outside the policy: the write request is refused", ls.String())
		}
	}
	for _, md := range req.Metadata {
		if !allowsFamily(enf, md.MetricFamilyName) {
			return apierror.New(apierror.Forbidden, "metadata of metric %q is outside the policy: the write request is refused", md.MetricFamilyName)
		}
	}
	return nil
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
