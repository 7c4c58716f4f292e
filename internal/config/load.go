package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultUpstreamTimeout bounds an upstream call when the file sets no timeout.
const DefaultUpstreamTimeout = 2 * time.Minute

// LoadFile reads and validates the configuration file at path. See Parse.
func LoadFile(path string) (*Config, error) { return LoadFileWeb(path, WebUsers{}) }

// WebUsers are the basic_auth_users of the web configuration file, which
// join those of promgate.yml.
type WebUsers struct {
	// File names the web configuration file in errors.
	File  string
	Users map[string]string
}

// LoadFileWeb is LoadFile with the users of the web configuration file.
// Relative paths in the file are resolved against its directory.
func LoadFileWeb(path string, web WebUsers) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseWeb(data, web)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.setDirectory(filepath.Dir(path))
	cfg.path = path
	// Decoding keeps two YAML trees of the whole file alive at once, each
	// node several times the size of what the configuration retains: with
	// thousands of users or policies that is tens of MiB, which the runtime
	// would keep mapped long after the load. A load is rare (start,
	// reload): hand the freed memory back now.
	debug.FreeOSMemory()
	return cfg, nil
}

// setDirectory makes relative file paths relative to dir, as Prometheus
// does for the files its configuration names.
func (c *Config) setDirectory(dir string) {
	c.Audit.auditDirectory(dir)
	c.httpClientDirectory(dir)
	if j := c.Authentication.JWT; j != nil && j.JWKSFile != "" && !filepath.IsAbs(j.JWKSFile) {
		j.JWKSFile = filepath.Join(dir, j.JWKSFile)
	}
}

// Files lists the files the configuration refers to, whose changes a
// reload must pick up.
func (c *Config) Files() []string {
	if j := c.Authentication.JWT; j != nil && j.JWKSFile != "" {
		return []string{j.JWKSFile}
	}
	return nil
}

// Parse decodes and validates a configuration. See ParseWeb.
func Parse(data []byte) (*Config, error) { return ParseWeb(data, WebUsers{}) }

// ParseWeb decodes and validates a configuration whose users are joined by
// those of the web configuration file; a user in both is an error.
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
func ParseWeb(data []byte, web WebUsers) (*Config, error) {
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

	if web.File == "" {
		web.File = "the web configuration file"
	}
	v := &validator{web: web}
	v.config(cfg, documentRoot(&root))
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	if len(web.Users) > 0 {
		cfg.WebUsers = web.Users
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
	web  WebUsers
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
	metricsKey, metrics := entry(root, "metrics")
	v.metrics(&cfg.Metrics, metricsKey, metrics)
	v.allLimits(cfg, root)
	auditKey, audit := entry(root, "audit")
	v.audit(cfg.Audit, auditKey, audit)
	writeKey, write := entry(root, "write_limits")
	v.writeLimits(cfg.WriteLimits, writeKey, write)
}
