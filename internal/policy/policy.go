package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/promgate/promgate/internal/identity"
)

// ErrNoPolicy is returned for an authenticated identity that no policy names.
var ErrNoPolicy = errors.New("no policy grants access to this identity")

// SubjectKind says what a subject names.
type SubjectKind int

// Kinds of subject.
const (
	SubjectUser SubjectKind = iota
	SubjectGroup
	SubjectEveryone
)

// Subject names who a rule applies to: "user:NAME", "group:NAME" or "*".
type Subject struct {
	Kind SubjectKind
	Name string
}

// ParseSubject parses the subject syntax of promgate.yml.
func ParseSubject(s string) (Subject, error) {
	switch {
	case s == "*":
		return Subject{Kind: SubjectEveryone}, nil
	case strings.HasPrefix(s, "user:") && len(s) > len("user:"):
		return Subject{Kind: SubjectUser, Name: s[len("user:"):]}, nil
	case strings.HasPrefix(s, "group:") && len(s) > len("group:"):
		return Subject{Kind: SubjectGroup, Name: s[len("group:"):]}, nil
	}
	return Subject{}, fmt.Errorf("invalid subject %q: want \"user:NAME\", \"group:NAME\" or \"*\"", s)
}

// Rule is one policy of the configuration.
type Rule struct {
	Name      string
	Subjects  []Subject
	AllowAll  bool
	Selectors []*Template
}

// Policy is the effective access of one identity.
type Policy struct {
	// AllowAll gives unrestricted access; Selectors is then empty.
	AllowAll bool
	// Selectors is the union of the selectors of every rule that names the
	// identity: a series is visible when it matches at least one.
	Selectors []Selector
	// Rules names the rules that contributed, for introspection and logs.
	Rules []string
}

// Set resolves identities to policies. It is immutable once built, so a reload
// builds a new Set and swaps it.
type Set struct {
	rules  []Rule
	groups map[string][]string // user -> groups from the configuration
}

// NewSet builds a Set from rules and the configuration's groups (group name ->
// member users).
func NewSet(rules []Rule, groups map[string][]string) *Set {
	byUser := map[string][]string{}
	for g, users := range groups {
		for _, u := range users {
			byUser[u] = append(byUser[u], g)
		}
	}
	for _, gs := range byUser {
		slices.Sort(gs)
	}
	return &Set{rules: rules, groups: byUser}
}

// Groups returns the groups of id: those the authenticator asserted plus those
// the configuration gives the user.
func (s *Set) Groups(id identity.Identity) []string {
	out := slices.Clone(id.Groups)
	out = append(out, s.groups[id.User]...)
	slices.Sort(out)
	return slices.Compact(out)
}

// For returns the policy of id, or ErrNoPolicy.
func (s *Set) For(id identity.Identity) (*Policy, error) {
	groups := s.Groups(id)
	p := &Policy{}
	seen := map[string]bool{}
	for _, r := range s.rules {
		if !r.names(id.User, groups) {
			continue
		}
		p.Rules = append(p.Rules, r.Name)
		if r.AllowAll {
			p.AllowAll = true
			continue
		}
		for _, t := range r.Selectors {
			sel, err := t.Execute(id.User)
			if err != nil {
				return nil, err
			}
			// The same selector from two rules adds nothing to the union.
			if key := sel.String(); !seen[key] {
				seen[key] = true
				p.Selectors = append(p.Selectors, sel)
			}
		}
	}
	if len(p.Rules) == 0 {
		return nil, ErrNoPolicy
	}
	if p.AllowAll {
		p.Selectors = nil
	}
	return p, nil
}

func (r *Rule) names(user string, groups []string) bool {
	for _, sub := range r.Subjects {
		switch sub.Kind {
		case SubjectEveryone:
			return true
		case SubjectUser:
			if sub.Name == user {
				return true
			}
		case SubjectGroup:
			if slices.Contains(groups, sub.Name) {
				return true
			}
		}
	}
	return false
}
