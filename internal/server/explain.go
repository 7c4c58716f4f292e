package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/promgate/promgate/internal/alertmanager"
	"github.com/promgate/promgate/internal/identity"
	"github.com/promgate/promgate/internal/limits"
	"github.com/promgate/promgate/internal/policy"
	promapi "github.com/promgate/promgate/internal/prometheus"
	"github.com/promgate/promgate/internal/promql"
)

// ExplainRequest is what to explain for an identity: any of a PromQL query,
// match[] selectors, the Alertmanager listings' filter and a silence's
// matchers.
type ExplainRequest struct {
	Query              string
	Match              []string
	AlertmanagerFilter bool
	Silence            string
}

// Explanation is what promgate makes of an identity and its request. It is
// computed by the functions that enforce requests (the policy set, the
// PromQL enforcer, the Alertmanager enforcer) so that it cannot say other
// than what a request would get.
type Explanation struct {
	User     string   `json:"user"`
	Groups   []string `json:"groups"`
	Method   string   `json:"method,omitempty"`
	AllowAll bool     `json:"allow_all"`
	Policies []string `json:"policies"`
	// Selectors are the effective selectors, a union; Words says each in
	// words.
	Selectors []string `json:"selectors"`
	Words     []string `json:"selectors_in_words"`
	// Limits are the identity's limits, each in the configuration's key
	// (rate, concurrency and upstream time answer 429, max_series cuts
	// answers, the other query guards answer 422).
	Limits []string `json:"limits,omitempty"`

	Query string `json:"query,omitempty"`
	// Sent is what goes upstream for Query: one expression, or several
	// whose answers promgate merges (an instant query for a bare range
	// selector under a policy of several selectors).
	Sent []string `json:"sent,omitempty"`

	Match     []string `json:"match,omitempty"`
	MatchSent []string `json:"match_sent,omitempty"`

	// ExtraFilters are the policy's selectors handed down with the query
	// or match[] (which go upstream as given) when the upstream enforces
	// them (enforcement: victoriametrics).
	ExtraFilters []string `json:"extra_filters,omitempty"`

	// AlertFilters are the filter parameters added to Alertmanager's
	// alert listings (AlertmanagerFilter asked); the answer is filtered by
	// the selectors whatever they are.
	AlertmanagerFilter bool     `json:"alertmanager_filter,omitempty"`
	AlertFilters       []string `json:"alert_filters,omitempty"`

	Silence         string   `json:"silence,omitempty"`
	SilenceOwned    bool     `json:"silence_owned,omitempty"`
	SilenceInjected []string `json:"silence_injected,omitempty"`
	SilenceSent     []string `json:"silence_sent,omitempty"`

	// Refusal is why promgate would refuse the request ("" when it would
	// not).
	Refusal string `json:"refusal,omitempty"`
}

var explainParser = parser.NewParser(parser.Options{})

// Explain tells what promgate would do with req from id, without calling
// an upstream. The groups of id are those an authenticator asserted; the
// configuration's are added as for a request. A refusal is returned as an
// error and in the Explanation's Refusal, with what was known before it.
func (st *State) Explain(id identity.Identity, req ExplainRequest) (*Explanation, error) {
	id.Groups = st.Policies.Groups(id)
	ex := &Explanation{User: id.User, Groups: id.Groups, Method: id.Method}
	if ex.Groups == nil {
		ex.Groups = []string{}
	}
	refuse := func(err error) (*Explanation, error) {
		ex.Refusal = err.Error()
		return ex, err
	}
	acc, err := st.accessFor(id)
	if err != nil {
		if errors.Is(err, policy.ErrNoPolicy) {
			err = fmt.Errorf("user %q: %w", id.User, err)
		}
		return refuse(err)
	}
	p := acc.policy
	ex.AllowAll, ex.Policies = p.AllowAll, p.Rules
	ex.Limits = acc.limits.Describe()
	for _, s := range p.Selectors {
		ex.Selectors = append(ex.Selectors, s.String())
		ex.Words = append(ex.Words, SelectorInWords(s))
	}

	pushdown := !p.AllowAll && st.PromAPI != nil && st.PromAPI.Enforcement() == promapi.EnforceVictoriaMetrics
	if pushdown && (req.Query != "" || len(req.Match) > 0) {
		filters, err := promapi.PolicyFilters(acc.enforcer)
		if err != nil {
			return refuse(err)
		}
		ex.ExtraFilters = filters
	}

	if req.Query != "" {
		ex.Query = req.Query
		if p.AllowAll || pushdown {
			ex.Sent = []string{req.Query}
		} else {
			sent, err := acc.enforcer.Query(req.Query)
			if err != nil {
				var pe *promql.ParseError
				if errors.As(err, &pe) {
					err = fmt.Errorf("invalid parameter \"query\": %w", pe.Err)
				}
				return refuse(err)
			}
			ex.Sent = sent
		}
		// The guards a query's text meets, as an instant query now; a
		// range query's span and step are the request's, not the text's.
		now := time.Now()
		if err := acc.limits.CheckQuery(limits.Query{Text: req.Query, Start: now, End: now, Now: now}); err != nil {
			return refuse(err)
		}
	}

	if len(req.Match) > 0 {
		ex.Match = req.Match
		var in [][]*labels.Matcher
		for _, s := range req.Match {
			ms, err := explainParser.ParseMetricSelector(s)
			if err != nil {
				return refuse(fmt.Errorf("invalid parameter \"match[]\": %w", err))
			}
			in = append(in, ms)
		}
		if p.AllowAll || pushdown {
			ex.MatchSent = req.Match
		} else {
			for _, ms := range acc.enforcer.Match(in) {
				ex.MatchSent = append(ex.MatchSent, promql.FormatSelector(ms))
			}
		}
	}

	if req.AlertmanagerFilter || req.Silence != "" {
		if st.AMAPI == nil {
			return refuse(errors.New("no Alertmanager is configured"))
		}
	}
	var am *alertmanager.Enforcer
	if !p.AllowAll {
		am = alertmanager.NewEnforcer(acc.selectors)
	}
	if req.AlertmanagerFilter {
		ex.AlertmanagerFilter = true
		if am != nil {
			ex.AlertFilters = am.UpstreamFilters()
		}
	}
	if req.Silence != "" {
		ex.Silence = req.Silence
		ms, err := compat.Matchers(req.Silence, "explain")
		if err != nil {
			return refuse(fmt.Errorf("invalid silence matchers: %w", err))
		}
		if am == nil {
			ex.SilenceOwned = true
			ex.SilenceSent = matcherStrings(ms)
			return ex, nil
		}
		ex.SilenceOwned = am.Owns(ms)
		out, err := am.Inject(ms)
		if err != nil {
			return refuse(err)
		}
		ex.SilenceInjected = matcherStrings(out[len(ms):])
		ex.SilenceSent = matcherStrings(out)
	}
	return ex, nil
}

func matcherStrings[M fmt.Stringer](ms []M) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// SelectorInWords says what a selector selects, for people who do not read
// PromQL matchers.
func SelectorInWords(s policy.Selector) string {
	if len(s) == 0 {
		return "every series"
	}
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = matcherInWords(m)
	}
	return "series whose " + strings.Join(parts, " and whose ")
}

func matcherInWords(m *labels.Matcher) string {
	name := "label " + strconv.Quote(m.Name)
	if m.Name == labels.MetricName {
		name = "metric name"
	}
	v := strconv.Quote(m.Value)
	switch m.Type {
	case labels.MatchEqual:
		if m.Value == "" {
			return name + " is empty or absent"
		}
		return name + " is " + v
	case labels.MatchNotEqual:
		if m.Value == "" {
			return name + " is set"
		}
		return name + " is not " + v
	case labels.MatchRegexp:
		return name + " matches the regular expression " + v + " (whole value)"
	default:
		return name + " does not match the regular expression " + v + " (whole value)"
	}
}
