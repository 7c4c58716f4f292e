package config

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/promgate/promgate/internal/policy"
)

// Validation of the groups and policies sections.

func (v *validator) groups(groups map[string][]string, n *yaml.Node) {
	for _, p := range pairs(n) {
		name := p.key.Value
		line := lineOf(p.key, n)
		if name == "" {
			v.errorf(line, "groups: group name must not be empty")
		}
		members := groups[name]
		items := sequence(p.value, len(members))
		for i, m := range members {
			if strings.TrimSpace(m) == "" {
				v.errorf(lineOf(items[i], p.value), "group %q: member name must not be empty", name)
			}
		}
	}
}

func (v *validator) policies(cfg *Config, n *yaml.Node) {
	items := sequence(n, len(cfg.Policies))
	seen := map[string]int{} // name -> line of first definition
	templates := map[string]*policy.Template{}
	for i, p := range cfg.Policies {
		pn := items[i]
		line := lineOf(pn, n)
		name := p.Name
		ok := true
		switch {
		case name == "":
			v.errorf(line, "policy #%d: name is required", i+1)
			name = fmt.Sprintf("#%d", i+1)
			ok = false
		default:
			// The policy's own line, not the name's: with a merge key
			// (<<: *other) the name node belongs to another policy.
			if first, dup := seen[name]; dup {
				v.errorf(line, "policy %q: duplicate policy name (first defined at line %d)", name, first)
				ok = false
			} else {
				seen[name] = line
			}
		}

		rule := policy.Rule{Name: p.Name, AllowAll: p.AllowAll}

		subjKey, subjNode := entry(pn, "subjects")
		if len(p.Subjects) == 0 {
			v.errorf(lineOf(subjKey, pn, n), "policy %q: subjects is required", name)
			ok = false
		}
		subjItems := sequence(subjNode, len(p.Subjects))
		for j, s := range p.Subjects {
			sl := lineOf(subjItems[j], subjNode)
			sub, err := policy.ParseSubject(s)
			if err != nil {
				v.errorf(sl, "policy %q: %v", name, err)
				ok = false
				continue
			}
			if sub.Kind == policy.SubjectUser || sub.Kind == policy.SubjectGroup {
				// Whether anyone can carry the name depends on the
				// authentication methods: CheckSubjects asks them.
				cfg.subjects = append(cfg.subjects, subjectRef{policy: name, text: s, subject: sub, line: sl})
			}
			rule.Subjects = append(rule.Subjects, sub)
		}

		selKey, selNode := entry(pn, "selectors")
		switch {
		case p.AllowAll && len(p.Selectors) > 0:
			v.errorf(lineOf(selKey, pn, n), "policy %q: allow_all: true and selectors are mutually exclusive", name)
			ok = false
		case !p.AllowAll && len(p.Selectors) == 0:
			v.errorf(line, "policy %q: one of allow_all: true or a non-empty selectors list is required", name)
			ok = false
		}
		selItems := sequence(selNode, len(p.Selectors))
		for j, s := range p.Selectors {
			// Templates are immutable: policies that write the same
			// selector share one (thousands of per-user policies over a
			// handful of selectors parse each once).
			t, seen := templates[s]
			if !seen {
				var err error
				if t, err = policy.ParseTemplate(s); err != nil {
					v.errorf(lineOf(selItems[j], selNode), "policy %q: %v", name, err)
					ok = false
					continue
				}
				templates[s] = t
			}
			rule.Selectors = append(rule.Selectors, t)
		}
		if ok {
			cfg.Rules = append(cfg.Rules, rule)
		}
	}
}

// subjectRef is a user or group subject of a policy, with its line.
type subjectRef struct {
	policy, text string
	subject      policy.Subject
	line         int
}

// Method is what CheckSubjects needs to know of an authentication method.
// Package auth's methods satisfy it; config does not know which methods
// exist, so a new one needs no change here.
type Method interface {
	// AssertsAnyUser reports whether the method can name users that are
	// not configured in promgate.
	AssertsAnyUser() bool
	// AssertsGroups reports whether the method can assert groups.
	AssertsGroups() bool
	// Users lists the users the method can name otherwise.
	Users() []string
}

// CheckSubjects checks the policies' subjects against the authentication
// methods built from the configuration.
//
// A group that is neither defined under groups nor assertable by a method
// is an error: no one can ever be in it, which is a mistake in the file.
// A user no method can name (not a basic auth user of either file, not an
// API token's user, and no method can assert arbitrary users) is only a
// warning: it is what removing a user's credentials looks like, and
// refusing that configuration would keep the old credentials alive. Each
// message starts with the subject's line.
func (c *Config) CheckSubjects(methods []Method) (warnings []string, err error) {
	anyUser, anyGroup := false, false
	users := map[string]bool{}
	for _, m := range methods {
		anyUser = anyUser || m.AssertsAnyUser()
		anyGroup = anyGroup || m.AssertsGroups()
		for _, u := range m.Users() {
			users[u] = true
		}
	}
	var errs []error
	for _, r := range c.subjects {
		switch r.subject.Kind {
		case policy.SubjectGroup:
			if _, defined := c.Groups[r.subject.Name]; !defined && !anyGroup {
				errs = append(errs, fmt.Errorf("line %d: policy %q: subject %q: group %q is not defined under groups", r.line, r.policy, r.text, r.subject.Name))
			}
		case policy.SubjectUser:
			if !anyUser && !users[r.subject.Name] {
				warnings = append(warnings, fmt.Sprintf("line %d: policy %q: subject %q: user %q has no credentials (not in basic_auth_users of either file nor in api_tokens); the subject matches no one", r.line, r.policy, r.text, r.subject.Name))
			}
		}
	}
	if len(errs) > 0 {
		err = errors.Join(errs...)
		if c.path != "" {
			err = fmt.Errorf("%s: %w", c.path, err)
		}
	}
	return warnings, err
}
