package prometheus

// Thanos Query's own parameters (pkg/api/query/v1.go of Thanos 0.36). A
// parameter passes when it can only narrow or regroup the series the
// rewritten query (or the combined match[]) already selects: Thanos applies
// the enforced matchers at every store before any of these act. The reasons
// are in README.md, section "Thanos Query".
var (
	// thanosQuerySingle pass on /api/v1/query and /api/v1/query_range.
	//   dedup                 merges the replicas of a series (the tenant's)
	//   partial_response      lets a failing store's share be missing
	//   max_source_resolution reads downsampled blocks of the same series
	//   engine                prometheus or thanos: either evaluates the
	//                         rewritten query, whose selectors are enforced
	//   analyze               the thanos engine's per-operator counts of the
	//                         rewritten query: the tenant's series only
	//   shard_info            keeps a hash shard of the selected series
	thanosQuerySingle = []string{"dedup", "partial_response", "max_source_resolution", "engine", "analyze", "shard_info"}
	// thanosMatchSingle pass on /api/v1/series, /labels, /label/NAME/values.
	thanosMatchSingle = []string{"dedup", "partial_response"}
	// thanosRepeatable: replicaLabels[] names the labels dedup merges
	// over; it drops labels from the tenant's series, it selects none.
	thanosRepeatable = []string{"replicaLabels[]"}
)

// refusedParams are parameters refused with 400 wherever they appear,
// with the reason given to the client.
var refusedParams = map[string]string{
	// storeMatch[] selects stores by their __address__: the answer then
	// tells whether a store of the operator's sits at an address, which
	// /api/v1/stores (refused) would show. It selects no series of anyone
	// else's, but it is a probe of the infrastructure, not a query.
	"storeMatch[]": "parameter \"storeMatch[]\" selects Thanos stores by address and is not available to restricted users",
}

// refusedParam returns why the parameter name is refused, or "".
func refusedParam(name string) string { return refusedParams[name] }

// thanosUIPages are the routes of Thanos Query's React UI besides the ones
// it shares with Prometheus' (pkg/ui/ui.go of Thanos 0.36). Each serves the
// same static page, which fetches its data through the API: /stores reads
// /api/v1/stores, which is refused, so the page shows that error.
var thanosUIPages = []string{"/stores", "/global", "/loaded", "/blocks"}

func init() {
	for _, p := range thanosUIPages {
		uiPages[p] = true
	}
}

func withThanos(p params, single []string) params {
	return params{
		single:     append(append([]string(nil), p.single...), single...),
		repeatable: append(append([]string(nil), p.repeatable...), thanosRepeatable...),
	}
}
