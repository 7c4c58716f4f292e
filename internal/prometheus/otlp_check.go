package prometheus

import (
	"context"
	"errors"
	"math"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// otlpTranslation is how the upstream turns OTLP data points into series:
// the settings its OTLP handler passes to Prometheus' translator.
type otlpTranslation struct {
	cfg      config.OTLPConfig
	settings prw.Settings
	// convertDelta: the upstream converts delta temporality to cumulative
	// before translating (--enable-feature=otlp-deltatocumulative).
	convertDelta bool
}

// newOTLPTranslation builds the translator's settings from the upstream's
// otlp: block and feature flags, as Prometheus 3.16's OTLP handler
// (storage/remote/write_otlp_handler.go) does.
func newOTLPTranslation(cfg config.OTLPConfig, features map[string]bool) *otlpTranslation {
	return &otlpTranslation{
		cfg:          cfg,
		convertDelta: features["otlp-deltatocumulative"],
		settings: prw.Settings{
			AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
			AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
			PromoteResourceAttributes:            prw.NewPromoteResourceAttributes(cfg),
			KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
			ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
			PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
			AllowDeltaTemporality:                features["otlp-native-delta-ingestion"],
			EnableTypeAndUnitLabels:              features["type-and-unit-labels"],
			LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
			LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
			// The lookback delta only spaces the samples of target_info
			// (one every half of it between a resource's first and last
			// timestamps); its labels do not depend on it. The largest
			// one keeps promgate from stepping through a span a client
			// chose (1970 to 2554 is a hundred million steps of the
			// default 2.5 minutes).
			LookbackDelta: math.MaxInt64,
		},
	}
}

// decodeOTLP reads an OTLP metrics export as Prometheus does.
func decodeOTLP(raw []byte, json bool) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if json {
		err = req.UnmarshalJSON(raw)
	} else {
		err = req.UnmarshalProto(raw)
	}
	if err != nil {
		return pmetric.Metrics{}, apierror.New(apierror.BadData, "invalid OTLP metrics request: %v", err)
	}
	return req.Metrics(), nil
}

// checkOTLP translates md as the upstream will and checks every series
// against the policy and the limits. md may be modified.
func checkOTLP(ctx context.Context, md pmetric.Metrics, tr *otlpTranslation, enf *promql.Enforcer, lim WriteLimits) error {
	if tr.convertDelta {
		// The upstream converts deltas to cumulative first, which changes
		// values, never labels: the series are those of the same
		// metrics taken as cumulative.
		deltaAsCumulative(md)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &otlpChecker{enf: enf, lim: lim, stop: cancel, seen: map[uint64]struct{}{}}
	_, err := prw.NewPrometheusConverter(c).FromMetrics(ctx, md, tr.settings)
	switch {
	case c.err != nil:
		return c.err
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apierror.New(apierror.Canceled, "OTLP write request canceled")
	}
	// The upstream writes nothing of a request it cannot translate whole.
	return apierror.New(apierror.BadData, "invalid OTLP metrics request: %v", err)
}

// deltaAsCumulative marks every delta metric of md cumulative.
func deltaAsCumulative(md pmetric.Metrics) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					if m.Sum().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
						m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					}
				case pmetric.MetricTypeHistogram:
					if m.Histogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
						m.Histogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					}
				case pmetric.MetricTypeExponentialHistogram:
					if m.ExponentialHistogram().AggregationTemporality() == pmetric.AggregationTemporalityDelta {
						m.ExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
					}
				}
			}
		}
	}
}

// otlpChecker is the appender the translator writes to: it checks each
// series and keeps nothing. The first refusal stops the translation.
type otlpChecker struct {
	enf  *promql.Enforcer
	lim  WriteLimits
	stop context.CancelFunc
	seen map[uint64]struct{} // hashes of the series seen, to count them
	err  error
}

var _ storage.AppenderV2 = (*otlpChecker)(nil)

func (c *otlpChecker) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.check(ls); err != nil {
		c.err = err
		c.stop()
		return 0, err
	}
	return 0, nil
}

func (c *otlpChecker) check(ls labels.Labels) error {
	name := ls.Get(labels.MetricName)
	if n := ls.Len(); n > c.lim.MaxLabelsPerSeries {
		return apierror.New(apierror.BadData, "a series of metric %q has %d labels, more than %d: the OTLP write request is refused", name, n, c.lim.MaxLabelsPerSeries)
	}
	var err error
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil:
		case len(l.Name) > c.lim.MaxLabelNameLength:
			err = apierror.New(apierror.BadData, "a series of metric %q has a label name of %d bytes, more than %d: the OTLP write request is refused", name, len(l.Name), c.lim.MaxLabelNameLength)
		case len(l.Value) > c.lim.MaxLabelValueLength:
			err = apierror.New(apierror.BadData, "label %q of a series of metric %q has a value of %d bytes, more than %d: the OTLP write request is refused", l.Name, name, len(l.Value), c.lim.MaxLabelValueLength)
		}
	})
	if err != nil {
		return err
	}
	if !c.enf.Allows(ls) {
		return apierror.New(apierror.Forbidden, "series %s is outside the policy: the OTLP write request is refused", ls.String())
	}
	h := ls.Hash()
	if _, ok := c.seen[h]; !ok {
		c.seen[h] = struct{}{}
		if len(c.seen) > c.lim.MaxSeries {
			return apierror.New(apierror.TooLarge, "OTLP write request with more than %d series", c.lim.MaxSeries)
		}
	}
	return nil
}

func (*otlpChecker) Commit() error   { return nil }
func (*otlpChecker) Rollback() error { return nil }
