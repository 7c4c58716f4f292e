package prometheus

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v2"

	"github.com/promgate/promgate/internal/apierror"
	"github.com/promgate/promgate/internal/promql"
)

// otlpPath is Prometheus' OTLP/HTTP metrics receiver
// (--web.enable-otlp-receiver).
const otlpPath = "/api/v1/otlp/v1/metrics"

// otlpWrite accepts an OTLP metrics export only when every series its data
// points become in the upstream satisfies the policy and the write limits;
// then the body is forwarded as it came. The series are computed by
// Prometheus' own translation (see checkOTLP) with the settings the
// upstream uses, read from it (see otlpSettingsCache). One series outside
// the policy refuses the whole request with 403, naming it, and nothing is
// forwarded.
func (a *API) otlpWrite(w http.ResponseWriter, r *http.Request, path string, _ params, enf *promql.Enforcer) error {
	body, err := readOTLPBody(r, a.opts.Write)
	if err != nil {
		return err
	}
	md, err := decodeOTLP(body.decoded, body.json)
	if err != nil {
		return err
	}
	tr, err := a.otlp.get(a, r)
	if err != nil {
		return err
	}
	if err := checkOTLP(r.Context(), md, tr, enf, a.opts.Write); err != nil {
		return err
	}
	out := remoteRequest(r, path, body.sent)
	if body.identity {
		out.Header.Del("Content-Encoding")
	}
	a.up.ServeHTTP(w, out)
	return nil
}

// otlpSettingsTTL is how long the upstream's translation settings are used
// before they are read again: a change of the upstream's otlp: block
// (a configuration reload) is followed within it.
const otlpSettingsTTL = 15 * time.Second

// otlpSettingsCache holds the upstream's OTLP translation settings.
//
// They are read from the upstream itself, not configured in promgate: the
// labels promgate decides on must be the labels the upstream writes, and a
// copy in promgate.yml could drift from the upstream's (a promoted
// attribute promgate thinks is a label but the upstream drops would let a
// tenant write series outside its policy). The otlp: block comes from
// /api/v1/status/config, the feature flags that change the translation
// (otlp-deltatocumulative, otlp-native-delta-ingestion, type-and-unit-labels)
// from /api/v1/status/flags, the version from /api/v1/status/buildinfo.
// Without them no OTLP write passes (503).
type otlpSettingsCache struct {
	mu      sync.Mutex
	cur     *otlpTranslation
	fetched time.Time
}

func (c *otlpSettingsCache) get(a *API, r *http.Request) (*otlpTranslation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && time.Since(c.fetched) < otlpSettingsTTL {
		return c.cur, nil
	}
	ctx, cancel := a.up.WithTimeout(r.Context())
	defer cancel()
	get := r.Clone(ctx)
	get.Method = http.MethodGet
	get.Body = http.NoBody
	get.ContentLength = 0
	get.Header.Del("Content-Type")
	get.Header.Del("Content-Encoding")
	// promgate computes the series with the translator of Prometheus
	// 3.16. Other versions translate with other code: 2.x with older
	// settings and rules, other 3.x minors with rules of their own (and a
	// later one may read fields of the OTLP messages this decoder skips).
	// Their labels could differ from the ones promgate decides on. The
	// version is read with the settings, so an upgrade is followed too.
	biData, ok := a.upstreamData(get, "/api/v1/status/buildinfo")
	if !ok {
		return nil, apierror.New(apierror.Unavailable, "OTLP writes need the upstream's version (/api/v1/status/buildinfo), which it did not give")
	}
	var bi struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(biData, &bi); err != nil {
		return nil, apierror.New(apierror.Upstream, "reading the upstream's version: %v", err)
	}
	if major, minor, ok := version(bi.Version); !ok || major != otlpMajor || minor != otlpMinor {
		v := bi.Version
		if v == "" {
			v = "a build without a version"
		}
		return nil, apierror.New(apierror.Forbidden, "OTLP writes through promgate need a Prometheus %d.%d upstream, whose translation promgate computes the series with; the upstream is %s", otlpMajor, otlpMinor, v)
	}
	cfgData, ok := a.upstreamData(get, "/api/v1/status/config")
	if !ok {
		return nil, apierror.New(apierror.Unavailable, "OTLP writes need the upstream's configuration (/api/v1/status/config), which it did not give")
	}
	flagData, ok := a.upstreamData(get, "/api/v1/status/flags")
	if !ok {
		return nil, apierror.New(apierror.Unavailable, "OTLP writes need the upstream's flags (/api/v1/status/flags), which it did not give")
	}
	tr, err := parseOTLPSettings(cfgData, flagData)
	if err != nil {
		return nil, apierror.New(apierror.Upstream, "reading the upstream's OTLP settings: %v", err)
	}
	c.cur, c.fetched = tr, time.Now()
	return tr, nil
}

// The Prometheus version whose OTLP translation promgate carries (the
// prometheus module in go.mod).
const otlpMajor, otlpMinor = 3, 16

// parseOTLPSettings reads the translation settings from the data of the
// upstream's /api/v1/status/config and /api/v1/status/flags.
func parseOTLPSettings(cfgData, flagData []byte) (*otlpTranslation, error) {
	var cfg struct {
		YAML string `json:"yaml"`
	}
	if err := json.Unmarshal(cfgData, &cfg); err != nil {
		return nil, err
	}
	doc := struct {
		OTLP config.OTLPConfig `yaml:"otlp"`
	}{OTLP: config.DefaultOTLPConfig}
	if err := yaml.Unmarshal([]byte(cfg.YAML), &doc); err != nil {
		return nil, err
	}
	var flags map[string]string
	if err := json.Unmarshal(flagData, &flags); err != nil {
		return nil, err
	}
	return newOTLPTranslation(doc.OTLP, parseFeatures(flags["enable-feature"])), nil
}

// parseFeatures reads the value of --enable-feature as /api/v1/status/flags
// prints it: the values of the repeated flag joined by commas, each a
// comma-separated list. Prometheus splits them on commas alone.
func parseFeatures(v string) map[string]bool {
	out := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		out[f] = true
	}
	return out
}
