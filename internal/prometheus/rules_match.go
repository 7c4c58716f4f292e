package prometheus

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// Prometheus 3 narrows /api/v1/rules by match[]: a rule is kept when its
// own labels (as written in the rule file: no __name__, templates not
// expanded) match one of the selectors. promgate keeps a rule when its
// labels (and its name as __name__, for a recording rule) are the tenant's
// or when one of its alerts is; alerts take their labels from the series,
// so a rule without the tenant's labels can have the tenant's alerts, and
// no match[] keeps it (Prometheus refuses a selector that matches a rule
// without labels: "match[] must contain at least one non-empty matcher").
// So the policy goes upstream only when alerts cannot keep a rule: with
// type=record or exclude_alerts=true. There, the policy's selectors without
// their __name__ matchers select a superset of what promgate keeps, and
// promgate's filtering (which stays) makes it exact. The rest is filtered
// by promgate alone.

// narrowRules adds the policy to the match[] sent upstream when that is
// exact (see above); vs holds the client's parameters.
func (a *API) narrowRules(r *http.Request, vs url.Values, enf *promql.Enforcer) error {
	if a.opts.AlertNamePrefix || !rulesWithoutAlerts(vs) {
		// With the name prefix option a rule is also the user's by
		// its alertname, which match[] cannot say.
		return nil
	}
	policy, ok := rulesPolicyMatch(enf.Match(nil))
	if !ok || !a.caps.rulesMatch(a, r) {
		return nil
	}
	client, err := parseRulesMatch(vs["match[]"])
	if err != nil {
		return err
	}
	vs["match[]"] = rulesMatchProduct(client, policy)
	return nil
}

// rulesWithoutAlerts reports whether the answer can have no alerts, read
// as Prometheus reads the parameters (from the URL, where rebuild puts a
// GET's).
func rulesWithoutAlerts(vs url.Values) bool {
	if strings.ToLower(vs.Get("type")) == "record" {
		return true
	}
	ex, err := strconv.ParseBool(strings.ToLower(vs.Get("exclude_alerts")))
	return err == nil && ex
}

// rulesPolicyMatch returns the policy's selectors (from Enforcer.Match)
// as match[] of rules: without __name__ matchers, which a rule's labels
// do not carry. ok is false when a selector is left without a matcher that
// refuses the empty value: Prometheus would refuse it, and it would keep
// every rule anyway.
func rulesPolicyMatch(sels [][]*labels.Matcher) (out [][]*labels.Matcher, ok bool) {
	for _, sel := range sels {
		var ms []*labels.Matcher
		nonEmpty := false
		for _, m := range sel {
			if m.Name == labels.MetricName {
				continue
			}
			ms = append(ms, m)
			nonEmpty = nonEmpty || !m.Matches("")
		}
		if !nonEmpty {
			return nil, false
		}
		out = append(out, ms)
	}
	return out, len(out) > 0
}

// parseRulesMatch parses the client's match[] and refuses what Prometheus
// refuses: once combined with the policy, Prometheus would not see it.
func parseRulesMatch(ss []string) ([][]*labels.Matcher, error) {
	var out [][]*labels.Matcher
	for _, s := range ss {
		ms, err := pqlParser.ParseMetricSelector(s)
		if err != nil {
			return nil, apierror.New(apierror.BadData, "%v", err)
		}
		nonEmpty := false
		for _, m := range ms {
			nonEmpty = nonEmpty || !m.Matches("")
		}
		if !nonEmpty {
			return nil, apierror.New(apierror.BadData, "match[] must contain at least one non-empty matcher")
		}
		out = append(out, ms)
	}
	return out, nil
}

// rulesMatchProduct is every client selector AND every policy selector
// (match[] are OR-ed upstream); no client selector is the policy alone.
func rulesMatchProduct(client, policy [][]*labels.Matcher) []string {
	if len(client) == 0 {
		client = [][]*labels.Matcher{nil}
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range client {
		for _, p := range policy {
			s := promql.FormatSelector(append(append([]*labels.Matcher(nil), c...), p...))
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// capabilities are what promgate learnt of its upstream, once: the API
// (and so this) is built anew on reload.
type capabilities struct {
	mu      sync.Mutex
	known   bool
	matches bool // /api/v1/rules reads match[]
	// The upstream's version; latest: a 3.x built without a version,
	// taken to be as recent as it gets.
	major, minor int
	latest       bool
}

// rulesMatch reports whether the upstream narrows rules by match[]
// (Prometheus 3). Read from /api/v1/status/buildinfo; a Prometheus built
// without a version (go install) is a 3.x when it has /api/v1/features,
// which 2.x lacks. An upstream that does not answer is asked again next
// time, and meanwhile not sent the policy.
func (c *capabilities) rulesMatch(a *API, r *http.Request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load(a, r)
	return c.matches
}

// load learns the upstream's version once; c.mu is held.
func (c *capabilities) load(a *API, r *http.Request) {
	if c.known {
		return
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	get := r.Clone(ctx)
	get.Method = http.MethodGet
	v, ok := a.upstreamData(get, "/api/v1/status/buildinfo")
	if !ok {
		return
	}
	var bi struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(v, &bi) != nil {
		return
	}
	switch major, minor, ok := version(bi.Version); {
	case ok:
		c.major, c.minor = major, minor
		c.matches = major >= 3
	case bi.Version == "":
		_, c.matches = a.upstreamData(get, "/api/v1/features")
		c.latest = c.matches
	}
	c.known = true
}

// atLeast reports whether the upstream is version major.minor or later;
// false while its version is unknown.
func (c *capabilities) atLeast(a *API, r *http.Request, major, minor int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load(a, r)
	return c.latest || c.major > major || (c.major == major && c.minor >= minor)
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// majorVersion reads the major version of a Prometheus version string.
func majorVersion(v string) (int, bool) {
	major, _, ok := version(v)
	return major, ok
}

// version reads the major and minor version of a Prometheus version string.
func version(v string) (major, minor int, ok bool) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	return major, minor, err1 == nil && err2 == nil
}

// upstreamData is the data of a successful answer of the upstream at path
// (ok false: none).
func (a *API) upstreamData(r *http.Request, path string) ([]byte, bool) {
	f, err := a.fetch(r, path, url.Values{})
	if err != nil {
		return nil, false
	}
	defer f.release()
	if f.code != http.StatusOK {
		return nil, false
	}
	data, failure, err := envelopeData(f.raw)
	if err != nil || failure != nil {
		return nil, false
	}
	return append([]byte(nil), data...), true
}
