package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"

	"github.com/promgate/promgate/internal/promql"
)

// Validation of the upstreams section and rendering of upstream headers.

func (v *validator) upstream(where string, u *Upstream, key, n *yaml.Node) {
	v.upstreamURLs(where, u, key, n)

	isAM := strings.HasSuffix(where, "alertmanager")
	switch r := field(n, "receivers"); {
	case r == nil:
		if isAM {
			u.Receivers = "routed"
		}
	case !isAM:
		v.errorf(lineOf(r, key, n), "%s.receivers applies to the alertmanager upstream only", where)
	case u.Receivers != "routed" && u.Receivers != "all" && u.Receivers != "none":
		v.errorf(lineOf(r, key, n), "%s.receivers: %q is not one of routed, all, none", where, u.Receivers)
	}
	if p := field(n, "alerts_by_name_prefix"); p != nil && isAM {
		v.errorf(lineOf(p, key, n), "%s.alerts_by_name_prefix applies to the prometheus upstream only", where)
	}

	if f := field(n, "features"); f != nil && isAM {
		v.errorf(lineOf(f, key, n), "%s.features applies to the prometheus upstream only", where)
	} else if f != nil {
		items := sequence(f, len(u.Features))
		seen := map[string]bool{}
		for i, name := range u.Features {
			line := lineOf(items[i], f, key, n)
			switch {
			case !promql.KnownFeature(name):
				v.errorf(line, "%s.features: %q is not a feature of Prometheus (--enable-feature)", where, name)
			case seen[name]:
				v.errorf(line, "%s.features: %q listed twice", where, name)
			}
			seen[name] = true
		}
	}

	v.httpClient(where, u, key, n)
	v.enforcement(where, u, key, n, isAM)

	timeoutNode := field(n, "timeout")
	switch {
	case u.Timeout == 0:
		u.Timeout = DefaultUpstreamTimeout
	case u.Timeout < 0:
		v.errorf(lineOf(timeoutNode, key, n), "%s.timeout must be positive, got %s", where, u.Timeout)
	}

	v.tenancy(where, u, key, n)

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

// DefaultFailTimeout is how long a server of several that failed is left
// aside when the file sets no fail_timeout.
const DefaultFailTimeout = 10 * time.Second

// Load balancing among several URLs of one upstream.
const (
	LeastLoaded    = "least_loaded"
	FirstAvailable = "first_available"
)

// URLList is the url of an upstream: one URL, or a list of servers with
// the same data.
type URLList []string

// UnmarshalYAML accepts a string or a sequence of strings.
func (l *URLList) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag != "!!null":
		*l = URLList{n.Value}
		return nil
	case n.Kind == yaml.ScalarNode:
		*l = nil
		return nil
	case n.Kind == yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*l = list
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: url must be a URL or a list of URLs", n.Line)}}
}

// upstreamURLs validates url, load_balancing and fail_timeout, and sets
// URL to the first of URLs.
func (v *validator) upstreamURLs(where string, u *Upstream, key, n *yaml.Node) {
	urlNode := field(n, "url")
	if len(u.URLs) == 0 && u.URL != "" {
		u.URLs = URLList{u.URL} // an Upstream built in code
	}
	if len(u.URLs) == 0 {
		v.errorf(lineOf(urlNode, key, n), "%s.url is required", where)
	}
	items := sequence(urlNode, len(u.URLs))
	seen := map[string]bool{}
	for i, raw := range u.URLs {
		line := lineOf(items[i], urlNode, key, n)
		if err := checkURL(raw); err != nil {
			v.errorf(line, "%s.url: %v", where, err)
			continue
		}
		// The same server twice would take two shares of the work and be
		// retried on itself. Compared without credentials, which the
		// message must not show.
		parsed, _ := url.Parse(raw)
		parsed.User = nil
		id := strings.TrimSuffix(parsed.String(), "/")
		if seen[id] {
			v.errorf(line, "%s.url: %s is listed twice", where, id)
		}
		seen[id] = true
	}
	if len(u.URLs) > 0 {
		u.URL = u.URLs[0]
	}

	switch lb := field(n, "load_balancing"); {
	case u.LoadBalancing == "":
		u.LoadBalancing = LeastLoaded
	case u.LoadBalancing != LeastLoaded && u.LoadBalancing != FirstAvailable:
		v.errorf(lineOf(lb, key, n), "%s.load_balancing: %q is not one of %s, %s", where, u.LoadBalancing, LeastLoaded, FirstAvailable)
	}
	switch ft := field(n, "fail_timeout"); {
	case u.FailTimeout == 0:
		u.FailTimeout = DefaultFailTimeout
	case u.FailTimeout < 0:
		v.errorf(lineOf(ft, key, n), "%s.fail_timeout must be positive, got %s", where, u.FailTimeout)
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

// Header syntax, as in RFC 9110 and golang.org/x/net/http/httpguts.

func validHeaderName(s string) bool { return httpguts.ValidHeaderFieldName(s) }

func validHeaderValue(s string) bool { return httpguts.ValidHeaderFieldValue(s) }
