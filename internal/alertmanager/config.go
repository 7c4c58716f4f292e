package alertmanager

import (
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/alertmanager/matcher/compat"
	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"go.yaml.in/yaml/v2"
)

// Config is what enforcement reads of an Alertmanager configuration (as
// config.original of GET /api/v2/status has it): the routing tree, for the
// receivers a tenant's alerts reach, and the inhibit rules, for the alerts
// a tenant's alert can inhibit. The rest (receivers' settings, templates,
// time intervals) is ignored.
type Config struct {
	route   *route
	inhibit []*inhibitRule
}

// inhibitRule is one of inhibit_rules: an alert matching the source
// matchers mutes the alerts matching the target matchers that have the
// same values of the equal labels.
type inhibitRule struct {
	SourceMatch    map[string]string `yaml:"source_match"`
	SourceMatchRE  map[string]string `yaml:"source_match_re"`
	SourceMatchers []string          `yaml:"source_matchers"`
	TargetMatch    map[string]string `yaml:"target_match"`
	TargetMatchRE  map[string]string `yaml:"target_match_re"`
	TargetMatchers []string          `yaml:"target_matchers"`
	Equal          []string          `yaml:"equal"`

	source []*amlabels.Matcher
	target []*amlabels.Matcher
}

// ParseConfig reads an Alertmanager configuration. Matchers are parsed as
// Alertmanager parses them; an unknown field is ignored, a matcher that
// does not parse is an error.
func ParseConfig(config string) (*Config, error) {
	var cfg struct {
		Route        *route         `yaml:"route"`
		InhibitRules []*inhibitRule `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		return nil, fmt.Errorf("alertmanager configuration: %w", err)
	}
	if cfg.Route == nil {
		return nil, fmt.Errorf("alertmanager configuration without a route")
	}
	if err := cfg.Route.compile(""); err != nil {
		return nil, err
	}
	for i, r := range cfg.InhibitRules {
		var err error
		if r.source, err = configMatchers(fmt.Sprintf("inhibit rule %d source", i), r.SourceMatch, r.SourceMatchRE, r.SourceMatchers); err != nil {
			return nil, err
		}
		if r.target, err = configMatchers(fmt.Sprintf("inhibit rule %d target", i), r.TargetMatch, r.TargetMatchRE, r.TargetMatchers); err != nil {
			return nil, err
		}
	}
	return &Config{route: cfg.Route, inhibit: cfg.InhibitRules}, nil
}

// configMatchers compiles the three ways a configuration gives matchers:
// match (equalities), match_re (regexes, anchored like matchers') and
// matchers (lines of matchers in Alertmanager's syntax).
func configMatchers(what string, match, matchRE map[string]string, lines []string) ([]*amlabels.Matcher, error) {
	var ms []*amlabels.Matcher
	for _, name := range slices.Sorted(maps.Keys(match)) {
		m, err := amlabels.NewMatcher(amlabels.MatchEqual, name, match[name])
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	for _, name := range slices.Sorted(maps.Keys(matchRE)) {
		m, err := amlabels.NewMatcher(amlabels.MatchRegexp, name, matchRE[name])
		if err != nil {
			return nil, fmt.Errorf("%s match_re %s: %w", what, name, err)
		}
		ms = append(ms, m)
	}
	for _, line := range lines {
		parsed, err := compat.Matchers(line, "config")
		if err != nil {
			return nil, fmt.Errorf("%s matchers %q: %w", what, line, err)
		}
		ms = append(ms, parsed...)
	}
	return ms, nil
}
