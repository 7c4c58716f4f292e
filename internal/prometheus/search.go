package prometheus

// The search API of Prometheus 3 (--enable-feature=search-api):
// /api/v1/search/metric_names, /label_names and /label_values, GET and
// POST. Each answers names or values of the series its match[] selects
// (all series without one), filtered by search[] and paged by limit, as
// NDJSON lines. It is enforced as /api/v1/labels is: every match[] is
// combined with every policy selector, none given is the policy itself, so
// that every name, value, score, limit and has_more is computed by
// Prometheus from the tenant's series alone, and the answer streams as it
// comes. include_metadata adds the type, help and unit of a metric name the
// tenant has, as /api/v1/metadata does.
var searchParams = params{
	single: []string{"start", "end", "fuzz_threshold", "fuzz_alg", "case_sensitive", "include_score",
		"sort_by", "sort_dir", "limit", "batch_size", "include_metadata", "label"},
	repeatable: []string{"match[]", "search[]"},
}
