package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/policy"
)

// DefaultUpstreamTimeout bounds an upstream call when the file sets no timeout.
const DefaultUpstreamTimeout = 2 * time.Minute

// LoadFile reads and validates the configuration file at path. See Parse.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration.
//
// It works in two passes, like Prometheus' loader. The first decodes the
// YAML strictly: syntax errors, unknown fields, duplicate keys and values of
// the wrong type are all reported together, and nothing else is checked,
// since a document that did not decode cleanly would only produce confusing
// follow-up errors. The second checks what the values mean (URLs, hashes,
// sources, subjects, selectors) and reports every problem at once, each
// prefixed with the line of the offending YAML node.
//
// On success the defaults are filled in, TrustedHeader.Prefixes is set and
// Rules holds the compiled policies in file order.
func Parse(data []byte) (*Config, error) {
	// The node tree gives the line numbers of the semantic pass.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fmt.Errorf("line %d: the file must hold a single YAML document", extra.Line)
	case !errors.Is(err, io.EOF):
		return nil, yamlError(err)
	}

	cfg := &Config{}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}

	v := &validator{}
	v.config(cfg, documentRoot(&root))
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return cfg, nil
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+\.(\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
)

// yamlError rewrites the decoder's messages into the loader's style: one
// error per problem, each starting with its line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// Syntax errors already read "yaml: line N: ...".
		return err
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("line %s: unknown field %q in %s", m[1], m[2], m[3])
		} else if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("line %s: duplicate key %s (already defined at line %s)", m[1], m[2], m[3])
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// validator collects every semantic error of a configuration.
type validator struct {
	errs []error
}

func (v *validator) errorf(line int, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	v.errs = append(v.errs, fmt.Errorf("line %d: "+format, append([]any{line}, args...)...))
}

func (v *validator) config(cfg *Config, root *yaml.Node) {
	upsKey, ups := entry(root, "upstreams")
	promKey, prom := entry(ups, "prometheus")
	if cfg.Upstreams.Prometheus == nil {
		v.errorf(lineOf(promKey, upsKey, root), "upstreams.prometheus is required")
	} else {
		v.upstream("upstreams.prometheus", cfg.Upstreams.Prometheus, promKey, prom)
	}
	if cfg.Upstreams.Alertmanager != nil {
		amKey, am := entry(ups, "alertmanager")
		v.upstream("upstreams.alertmanager", cfg.Upstreams.Alertmanager, amKey, am)
	}

	authKey, auth := entry(root, "authentication")
	v.authentication(&cfg.Authentication, authKey, auth, root)
	v.groups(cfg.Groups, field(root, "groups"))
	v.policies(cfg, field(root, "policies"))
}

func (v *validator) upstream(where string, u *Upstream, key, n *yaml.Node) {
	urlNode := field(n, "url")
	switch {
	case u.URL == "":
		v.errorf(lineOf(urlNode, key, n), "%s.url is required", where)
	default:
		if err := checkURL(u.URL); err != nil {
			v.errorf(lineOf(urlNode, key, n), "%s.url: %v", where, err)
		}
	}

	timeoutNode := field(n, "timeout")
	switch {
	case u.Timeout == 0:
		u.Timeout = DefaultUpstreamTimeout
	case u.Timeout < 0:
		v.errorf(lineOf(timeoutNode, key, n), "%s.timeout must be positive, got %s", where, u.Timeout)
	}

	headers := field(n, "headers")
	seen := map[string]string{} // canonical name -> name as written
	for _, p := range pairs(headers) {
		name := p.key.Value
		line := lineOf(p.key, headers)
		if !validHeaderName(name) {
			v.errorf(line, "%s.headers: invalid header name %q", where, name)
			continue
		}
		canonical := http.CanonicalHeaderKey(name)
		if first, dup := seen[canonical]; dup {
			v.errorf(line, "%s.headers: header %q is the same header as %q", where, name, first)
			continue
		}
		seen[canonical] = name
		t, err := checkHeaderValue(u.Headers[name])
		if err != nil {
			v.errorf(line, "%s.headers: header %q: %v", where, name, err)
			continue
		}
		if t != nil {
			if u.headerTemplates == nil {
				u.headerTemplates = map[string]*template.Template{}
			}
			u.headerTemplates[name] = t
		}
	}
}

// checkURL accepts an absolute http or https URL. The URL itself is not
// repeated in the message because it may hold a password.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an absolute http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("must have a host")
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

// headerData is what an upstream header template can refer to; it matches
// what selector templates see.
type headerData struct {
	User string
}

// sampleUser is the identity templates are executed with at load time, so
// that references to unknown fields fail here rather than on a request.
const sampleUser = "sample-user"

// checkHeaderValue validates an upstream header value and returns its
// template, or nil for a literal value.
func checkHeaderValue(value string) (*template.Template, error) {
	if !strings.Contains(value, "{{") {
		if !validHeaderValue(value) {
			return nil, errors.New("value contains control characters")
		}
		return nil, nil
	}
	t, err := parseHeaderTemplate(value)
	if err != nil {
		return nil, fmt.Errorf("invalid template: %v", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, headerData{User: sampleUser}); err != nil {
		return nil, fmt.Errorf("invalid template: %v", err)
	}
	if !validHeaderValue(buf.String()) {
		return nil, errors.New("template produces control characters")
	}
	return t, nil
}

func parseHeaderTemplate(value string) (*template.Template, error) {
	return template.New("header").Option("missingkey=error").Parse(value)
}

// RenderHeaders returns the upstream's headers for user, with templates
// such as {{ .User }} executed. The result is fresh on every call. It is
// safe for concurrent use.
func (u *Upstream) RenderHeaders(user string) (http.Header, error) {
	h := make(http.Header, len(u.Headers))
	var buf bytes.Buffer
	for name, value := range u.Headers {
		if strings.Contains(value, "{{") {
			t := u.headerTemplates[name]
			if t == nil {
				// An Upstream built in code rather than by Parse.
				var err error
				if t, err = parseHeaderTemplate(value); err != nil {
					return nil, fmt.Errorf("header %q: %w", name, err)
				}
			}
			buf.Reset()
			if err := t.Execute(&buf, headerData{User: user}); err != nil {
				return nil, fmt.Errorf("header %q: %w", name, err)
			}
			value = buf.String()
		}
		// A user name is not trusted to be a valid header value: refuse
		// rather than let it split or corrupt the upstream request.
		if !validHeaderValue(value) {
			return nil, fmt.Errorf("header %q: value for user contains control characters", name)
		}
		h.Set(name, value)
	}
	return h, nil
}

func (v *validator) authentication(a *Authentication, key, n, root *yaml.Node) {
	if len(a.BasicAuthUsers) == 0 && a.TrustedHeader == nil {
		v.errorf(lineOf(key, root), "authentication: at least one of basic_auth_users or trusted_header is required")
	}

	users := field(n, "basic_auth_users")
	for _, p := range pairs(users) {
		name := p.key.Value
		line := lineOf(p.key, users)
		switch {
		case name == "":
			v.errorf(line, "basic_auth_users: user name must not be empty")
			continue
		case strings.ContainsRune(name, ':'):
			// Basic auth splits user and password at the first colon.
			v.errorf(line, "basic_auth_users: user name %q must not contain ':'", name)
			continue
		}
		// The hash is never printed: it is a secret of its own (offline
		// guessing), and the error may end up in logs.
		hash := a.BasicAuthUsers[name]
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || len(hash) != bcryptHashLen {
			v.errorf(line, "basic_auth_users: user %q: password is not a valid bcrypt hash", name)
		}
	}

	th := a.TrustedHeader
	if th == nil {
		return
	}
	tk, tn := entry(n, "trusted_header")
	nameNode := field(tn, "name")
	switch {
	case th.Name == "":
		v.errorf(lineOf(nameNode, tk), "trusted_header.name is required")
	case !validHeaderName(th.Name):
		v.errorf(lineOf(nameNode, tk), "trusted_header.name: invalid header name %q", th.Name)
	case strings.EqualFold(th.Name, "Authorization"):
		v.errorf(lineOf(nameNode, tk), "trusted_header.name must not be Authorization")
	}

	srcNode := field(tn, "trusted_sources")
	if len(th.TrustedSources) == 0 {
		v.errorf(lineOf(srcNode, tk), "trusted_header.trusted_sources is required: the identity header must only be accepted from the proxy that sets it")
		return
	}
	items := sequence(srcNode, len(th.TrustedSources))
	th.Prefixes = make([]netip.Prefix, 0, len(th.TrustedSources))
	for i, s := range th.TrustedSources {
		p, err := parseSource(s)
		if err != nil {
			v.errorf(lineOf(items[i], srcNode), "trusted_header.trusted_sources: %v", err)
			continue
		}
		th.Prefixes = append(th.Prefixes, p)
	}
}

// bcryptHashLen is the length of every bcrypt hash ("$2y$10$" + 53 chars).
const bcryptHashLen = 60

// parseSource parses an IP address or a CIDR prefix. A bare address is a
// prefix of one address; host bits of a prefix are masked off.
func parseSource(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid IP address or CIDR %q", s)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

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
				if _, defined := cfg.Groups[sub.Name]; !defined {
					v.errorf(sl, "policy %q: subject %q: group %q is not defined under groups", name, s, sub.Name)
					ok = false
				}
			case policy.SubjectUser:
				// With a trusted header any name can arrive, so only a
				// basic-auth-only configuration knows every user.
				if _, known := auth.BasicAuthUsers[sub.Name]; !known && auth.TrustedHeader == nil {
					v.errorf(sl, "policy %q: subject %q: user %q is not in basic_auth_users", name, s, sub.Name)
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

// Header syntax, as in RFC 9110 and golang.org/x/net/http/httpguts.

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// YAML node helpers. They tolerate absent nodes (nil) so that a missing
// field is reported at the line of its parent.

// documentRoot returns the top mapping of a parsed document, or nil.
func documentRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return resolve(n.Content[0])
	}
	return nil
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

type pair struct{ key, value *yaml.Node }

// pairs lists the entries of a mapping in file order, expanding merge keys
// (<<) the way the decoder does: explicit keys win over merged ones.
func pairs(n *yaml.Node) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged, own []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolve(n.Content[i+1])
		if k.Tag == "!!merge" {
			if val != nil && val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					merged = append(merged, pairs(m)...)
				}
			} else {
				merged = append(merged, pairs(val)...)
			}
			continue
		}
		own = append(own, pair{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	out := own
	for _, m := range merged {
		shadowed := false
		for _, o := range own {
			if o.key.Value == m.key.Value {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, m)
		}
	}
	return out
}

// field returns the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	_, v := entry(n, key)
	return v
}

// entry returns the key and value nodes of key in mapping n, or nils.
func entry(n *yaml.Node, key string) (k, v *yaml.Node) {
	for _, p := range pairs(n) {
		if p.key.Value == key {
			return p.key, p.value
		}
	}
	return nil, nil
}

// sequence returns the items of sequence n, always with length want so that
// they can be indexed alongside the decoded slice; items it cannot match
// are nil and fall back to the sequence's line.
func sequence(n *yaml.Node, want int) []*yaml.Node {
	out := make([]*yaml.Node, want)
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != want {
		return out
	}
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

// lineOf returns the line of n, or of the first non-nil fallback.
func lineOf(n *yaml.Node, fallback ...*yaml.Node) int {
	if n != nil {
		return n.Line
	}
	for _, f := range fallback {
		if f != nil {
			return f.Line
		}
	}
	return 1
}
