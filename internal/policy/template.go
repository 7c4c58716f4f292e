// Package policy maps an identity to the label selectors it may see.
//
// A policy is a list of selectors in disjunctive normal form: a series is
// visible when it matches at least one selector. Selectors may use the caller's
// identity in matcher values ({{ .User }}); substitution happens after the
// selector was parsed, so a user name can never change the selector's shape.
package policy

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Selector is one conjunction of label matchers.
type Selector []*labels.Matcher

// String renders the selector in PromQL syntax.
func (s Selector) String() string {
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// templateData is what a selector template can refer to.
type templateData struct {
	User string
}

// Template is a parsed selector whose matcher values may contain
// text/template actions referring to the identity.
type Template struct {
	text     string
	matchers []matcherTemplate
	static   Selector // set when no value is templated
}

type matcherTemplate struct {
	typ   labels.MatchType
	name  string
	value string
	tmpl  *template.Template // nil when value is literal
}

// pqlParser is shared: the parser is stateless between calls.
var pqlParser = parser.NewParser(parser.Options{})

// ParseTemplate parses a selector such as `{namespace="{{ .User }}"}`.
// The selector must parse as PromQL before substitution and every template
// must execute against a sample identity, so that errors surface when the
// configuration is loaded rather than on a request.
func ParseTemplate(text string) (*Template, error) {
	ms, err := pqlParser.ParseMetricSelector(text)
	if err != nil {
		return nil, fmt.Errorf("invalid selector %q: %w", text, err)
	}
	t := &Template{text: text}
	templated := false
	for _, m := range ms {
		// The parser reads any quoted name, and Prometheus 3 stores any
		// UTF-8 one ({"service.name"="checkout"}), but no series has an
		// empty or invalid UTF-8 label name: a matcher on one is a
		// mistake that would match everything or nothing.
		if !model.UTF8Validation.IsValidLabelName(m.Name) {
			return nil, fmt.Errorf("invalid selector %q: %q is not a label name (a name is non-empty, valid UTF-8)", text, m.Name)
		}
		mt := matcherTemplate{typ: m.Type, name: m.Name, value: m.Value}
		if strings.Contains(m.Value, "{{") {
			tm, err := template.New(m.Name).Option("missingkey=error").Parse(m.Value)
			if err != nil {
				return nil, fmt.Errorf("invalid template in selector %q: %w", text, err)
			}
			mt.tmpl = tm
			templated = true
		}
		t.matchers = append(t.matchers, mt)
	}
	if !templated {
		t.static = ms
		return t, nil
	}
	// Execute against a sample user so that unknown fields fail at load time.
	if _, err := t.Execute("sample-user"); err != nil {
		return nil, fmt.Errorf("invalid template in selector %q: %w", text, err)
	}
	return t, nil
}

// String returns the selector as written in the configuration.
func (t *Template) String() string { return t.text }

// Templated reports whether the selector depends on the identity.
func (t *Template) Templated() bool { return t.static == nil }

// Execute returns the selector for a user. In regex matchers the substituted
// user name is quoted, so that a name like ".*" matches only itself.
func (t *Template) Execute(user string) (Selector, error) {
	if t.static != nil {
		return t.static, nil
	}
	out := make(Selector, 0, len(t.matchers))
	var buf bytes.Buffer
	for _, mt := range t.matchers {
		value := mt.value
		if mt.tmpl != nil {
			data := templateData{User: user}
			if mt.typ == labels.MatchRegexp || mt.typ == labels.MatchNotRegexp {
				data.User = regexp.QuoteMeta(user)
			}
			buf.Reset()
			if err := mt.tmpl.Execute(&buf, data); err != nil {
				return nil, err
			}
			value = buf.String()
		}
		m, err := labels.NewMatcher(mt.typ, mt.name, value)
		if err != nil {
			return nil, fmt.Errorf("selector %q for user %q: %w", t.text, user, err)
		}
		out = append(out, m)
	}
	return out, nil
}
