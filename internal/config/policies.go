package config

import (
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
	auth := cfg.Authentication
	openUsers := auth.TrustedHeader != nil || auth.ClientCertificate != nil || auth.JWT != nil
	openGroups := (auth.ClientCertificate != nil && auth.ClientCertificate.GroupsFrom != "") ||
		(auth.JWT != nil && auth.JWT.GroupsClaim != "")
	knownUsers := map[string]bool{}
	for u := range auth.BasicAuthUsers {
		knownUsers[u] = true
	}
	for u := range v.web.Users {
		knownUsers[u] = true
	}
	for _, t := range auth.APITokens {
		knownUsers[t.User] = true
	}
	items := sequence(n, len(cfg.Policies))
	seen := map[string]int{} // name -> line of first definition
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
			switch sub.Kind {
			case policy.SubjectGroup:
				// Certificates and JWTs may assert groups of their own;
				// otherwise a group must be defined here.
				if _, defined := cfg.Groups[sub.Name]; !defined && !openGroups {
					v.errorf(sl, "policy %q: subject %q: group %q is not defined under groups", name, s, sub.Name)
					ok = false
				}
			case policy.SubjectUser:
				// With a trusted header, certificates or JWTs any name can
				// arrive, so only basic users and API tokens are a closed
				// set of users.
				if !openUsers && !knownUsers[sub.Name] {
					v.errorf(sl, "policy %q: subject %q: user %q is not in basic_auth_users or api_tokens", name, s, sub.Name)
					ok = false
				}
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
			t, err := policy.ParseTemplate(s)
			if err != nil {
				v.errorf(lineOf(selItems[j], selNode), "policy %q: %v", name, err)
				ok = false
				continue
			}
			rule.Selectors = append(rule.Selectors, t)
		}
		if ok {
			cfg.Rules = append(cfg.Rules, rule)
		}
	}
}
