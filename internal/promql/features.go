package promql

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// Language is the PromQL an upstream accepts: the parser options its
// --enable-feature flags switch on. Every Enforcer made by one Language
// parses with the same parser; the options live in that parser, not in
// package-level state, so Languages of different upstreams never mix.
type Language struct {
	features []string
	parser   parser.Parser
}

// Features that change what promgate must parse or how the rewrite is read.
// The others of Prometheus 3.16 are accepted (a feature list can be copied
// from the upstream's command line) and change nothing here.
const (
	FeatureExperimentalFunctions = "promql-experimental-functions"
	FeatureBinopFillModifiers    = "promql-binop-fill-modifiers"
	FeatureUnquotedUTF8Names     = "promql-unquoted-utf8-names"
	// Always on in Prometheus 3.16, and so in promgate's parser.
	FeatureDurationExpr           = "promql-duration-expr"
	FeatureExtendedRangeSelectors = "promql-extended-range-selectors"
	// The rewrite is exact with and without them (proven by the oracle
	// tests with the engine set both ways); they are recorded, not acted on.
	FeatureDelayedNameRemoval = "promql-delayed-name-removal"
	FeatureTypeAndUnitLabels  = "type-and-unit-labels"
)

// knownFeatures are the --enable-feature values of Prometheus 3.16.
var knownFeatures = []string{
	FeatureExperimentalFunctions, FeatureBinopFillModifiers, FeatureUnquotedUTF8Names,
	FeatureDurationExpr, FeatureExtendedRangeSelectors, FeatureDelayedNameRemoval, FeatureTypeAndUnitLabels,
	"auto-reload-config", "concurrent-rule-eval", "created-timestamp-zero-ingestion", "delayed-compaction",
	"exemplar-storage", "extra-scrape-metrics", "fast-startup", "histograms-st-encoding",
	"memory-snapshot-on-shutdown", "metadata-wal-records", "native-histograms", "old-ui", "ooo-native-histograms",
	"openmetrics2", "otlp-deltatocumulative", "otlp-native-delta-ingestion", "promql-per-step-stats",
	"query-cost", "search-api", "st-storage", "st-synthesis", "use-start-timestamps", "use-uncached-io",
	"xor2-encoding", "zstd-scrape",
}

// KnownFeature reports whether name is an --enable-feature value of
// Prometheus 3.16.
func KnownFeature(name string) bool { return slices.Contains(knownFeatures, name) }

// NewLanguage returns the PromQL of an upstream started with these
// --enable-feature values. No features is what Prometheus accepts by
// default.
func NewLanguage(features []string) (*Language, error) {
	var opts parser.Options
	for _, f := range features {
		switch f {
		case FeatureExperimentalFunctions:
			opts.EnableExperimentalFunctions = true
		case FeatureBinopFillModifiers:
			opts.EnableBinopFillModifiers = true
		case FeatureUnquotedUTF8Names:
			opts.EnableUnquotedUTF8Names = true
		default:
			if !KnownFeature(f) {
				return nil, fmt.Errorf("unknown feature %q (known: %s)", f, strings.Join(knownFeatures, ", "))
			}
		}
	}
	return &Language{features: slices.Clone(features), parser: parser.NewParser(opts)}, nil
}

// Enabled reports whether the upstream enables feature.
func (l *Language) Enabled(feature string) bool { return slices.Contains(l.features, feature) }

// defaultLanguage is Prometheus without feature flags.
var defaultLanguage, _ = NewLanguage(nil)
