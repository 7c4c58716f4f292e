// Command promgate is a multi-tenant access gateway for Prometheus: it
// authenticates each request, maps the caller to a policy of label
// selectors and enforces it on every endpoint.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/policy"
	"github.com/promgate/promgate/internal/webconfig"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

type flags struct {
	configFile     string
	listen         string
	webConfig      string
	externalURL    string
	routePrefix    string
	maxBody        int64
	maxIdleConns   int
	upstreamProm   string
	upstreamAM     string
	upstreamTO     time.Duration
	injectLabel    string
	injectSource   string
	injectTrusted  []string
	logLevel       string
	logFormat      string
	checkFile      string
	hashCost       int
	readHeaderTO   time.Duration
	idleTO         time.Duration
	shutdownTimout time.Duration
	autoReload     time.Duration
	reloadAccess   string
	internalListen string
	checkWebFiles  []string
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f flags
	app := kingpin.New("promgate", "Multi-tenant access gateway for Prometheus.")
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	app.Terminate(nil)
	app.HelpFlag.Short('h')
	// As kingpin's Version flag, but on stdout (usage goes to stderr) and
	// without exiting the process, which run leaves to main.
	versionShown := false
	app.Flag("version", "Show the version, revision and Go version.").PreAction(func(*kingpin.ParseContext) error {
		fmt.Fprintln(stdout, version.Print("promgate"))
		versionShown = true
		return nil
	}).Bool()

	serve := app.Command("serve", "Run the gateway (the default command).").Default()
	serve.Flag("config.file", "promgate configuration file (promgate.yml).").StringVar(&f.configFile)
	serve.Flag("web.listen-address", "Address to listen on.").Default(":8080").StringVar(&f.listen)
	serve.Flag("web.config.file", "TLS and web settings, in the format of Prometheus' --web.config.file.").StringVar(&f.webConfig)
	serve.Flag("web.external-url", "URL under which promgate is reached; its path is the default route prefix.").StringVar(&f.externalURL)
	serve.Flag("web.route-prefix", "Path prefix promgate serves under. Defaults to the path of --web.external-url.").StringVar(&f.routePrefix)
	serve.Flag("web.max-request-body-bytes", "Largest urlencoded request body accepted.").Default("1048576").Int64Var(&f.maxBody)
	serve.Flag("web.read-header-timeout", "Time allowed to read a request's headers.").Default("30s").DurationVar(&f.readHeaderTO)
	serve.Flag("web.idle-timeout", "Time a client connection may stay idle.").Default("5m").DurationVar(&f.idleTO)
	serve.Flag("upstream.max-idle-conns", "Keep-alive connections kept per upstream; size to the expected concurrency.").Default("256").IntVar(&f.maxIdleConns)
	serve.Flag("upstream.prometheus", "Prometheus URL, for the zero-config mode (without --config.file).").StringVar(&f.upstreamProm)
	serve.Flag("upstream.alertmanager", "Alertmanager URL, for the zero-config mode.").StringVar(&f.upstreamAM)
	serve.Flag("upstream.timeout", "Upstream timeout in the zero-config mode.").Default("2m").DurationVar(&f.upstreamTO)
	serve.Flag("inject.label", "Zero-config mode: the label whose value must equal the caller's identity.").Default("job").StringVar(&f.injectLabel)
	serve.Flag("inject.source", "Zero-config mode: the header carrying the identity, set by a proxy in front.").Default("X-Prometheus-Injectable").StringVar(&f.injectSource)
	serve.Flag("inject.trusted-sources", "Zero-config mode: addresses (CIDR) allowed to set the identity header.").Default("127.0.0.0/8", "::1/128").StringsVar(&f.injectTrusted)
	serve.Flag("shutdown-timeout", "Time to finish requests in flight on SIGTERM.").Default("15s").DurationVar(&f.shutdownTimout)
	serve.Flag("config.auto-reload-interval", "How often the configuration files (promgate.yml, the web configuration, the files they name) are checked for changes, which are then reloaded; 0 disables.").Default("5s").DurationVar(&f.autoReload)
	serve.Flag("web.reload", "Who may POST /-/reload on --web.listen-address: admin (allow_all identities) or off. The internal listener always serves it. admin-or-localhost, the former default, is read as admin.").Default(reloadAdmin).EnumVar(&f.reloadAccess, reloadAdmin, reloadOff, reloadAdminOrLocalhost)
	serve.Flag("web.internal-listen-address", "Address of the internal listener: /metrics, /-/reload, /-/healthy, /-/ready and pprof (/debug/pprof/), without authentication; bind it to an address tenants cannot reach. With it, /metrics on --web.listen-address is for allow_all identities only. Empty: off.").StringVar(&f.internalListen)
	app.Flag("log.level", "Log level: debug, info, warn, error.").Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")

	check := app.Command("check", "Check configuration files.")
	checkConfig := check.Command("config", "Validate a promgate.yml, and the web configuration file if given; exit 1 naming the line and reason.")
	checkConfig.Arg("file", "The configuration file.").Required().StringVar(&f.checkFile)
	checkConfig.Arg("web-config-file", "The web configuration file (as --web.config.file).").StringVar(&f.webConfig)
	checkConfig.Flag("web.config.file", "The web configuration file.").StringVar(&f.webConfig)
	checkWeb := check.Command("web-config", "Validate web configuration files (--web.config.file), like promtool check web-config.")
	checkWeb.Arg("web-config-files", "The web configuration files.").Required().StringsVar(&f.checkWebFiles)

	hash := app.Command("hash-password", "Read a password on stdin and print its bcrypt hash.")
	hash.Flag("cost", "bcrypt cost.").Default("10").IntVar(&f.hashCost)
	hashToken := app.Command("hash-token", "Read an API token on stdin and print its SHA-256, for api_tokens.")

	var ef explainFlags
	explainCmd := app.Command("explain", "Print what promgate makes of an identity's request from the configuration alone: its groups, policies, selectors and what would be sent upstream. Exit 1 when it would be refused.")
	explainCmd.Flag("config.file", "promgate configuration file (promgate.yml).").Required().StringVar(&f.configFile)
	explainCmd.Flag("user", "The user to explain for.").Required().StringVar(&ef.user)
	explainCmd.Flag("group", "A group the authenticator asserts (repeatable); the configuration's groups are added.").StringsVar(&ef.groups)
	explainCmd.Flag("method", "The authentication method (basic, bearer, jwt, header, cert), shown as /-/whoami shows it.").StringVar(&ef.method)
	explainCmd.Flag("match", "A match[] selector of the series, labels or federate endpoints (repeatable).").StringsVar(&ef.match)
	explainCmd.Flag("alertmanager-filter", "Show the filter applied to Alertmanager's alert listings.").BoolVar(&ef.amAlert)
	explainCmd.Flag("silence", "Matchers of a silence, as amtool takes them ('{alertname=\"x\", team=\"a\"}'): is it the user's, and what is added.").StringVar(&ef.silence)
	explainCmd.Flag("json", "Print the explanation as JSON.").BoolVar(&ef.json)
	explainCmd.Arg("query", "A PromQL query.").StringVar(&ef.query)

	cmd, err := app.Parse(args)
	if versionShown {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "promgate: %v\n", err)
		return 2
	}
	logger := newLogger(f.logLevel, f.logFormat, stderr)
	switch cmd {
	case checkConfig.FullCommand():
		return checkConfigFiles(f, stdout, stderr, logger)
	case checkWeb.FullCommand():
		return checkWebConfigs(f.checkWebFiles, stdout, stderr, logger)
	case hash.FullCommand():
		return hashPassword(stdin, stdout, stderr, f.hashCost)
	case hashToken.FullCommand():
		return hashAPIToken(stdin, stdout, stderr)
	case explainCmd.FullCommand():
		return explain(f, ef, stdout, stderr, logger)
	}
	if err := serveGateway(f, logger); err != nil {
		logger.Error("promgate stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func hashPassword(stdin io.Reader, stdout, stderr io.Writer, cost int) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "promgate: reading password: %v\n", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "promgate: empty password")
		return 1
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		fmt.Fprintf(stderr, "promgate: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}

// loadConfig reads --config.file, or builds the zero-config mode of the
// PromAuthProxy: identity from a trusted header, policy {label="<identity>"}.
// The users of the web configuration file join those of either.
func loadConfig(f flags, web *webconfig.Config) (*config.Config, error) {
	var webUsers config.WebUsers
	if web != nil {
		webUsers = config.WebUsers{File: web.File, Users: web.Users}
	}
	if f.configFile != "" {
		return config.LoadFileWeb(f.configFile, webUsers)
	}
	if f.upstreamProm == "" {
		return nil, errors.New("either --config.file or --upstream.prometheus is required")
	}
	if !model.LabelName(f.injectLabel).IsValidLegacy() {
		return nil, fmt.Errorf("--inject.label: invalid label name %q", f.injectLabel)
	}
	if f.injectSource == "" {
		return nil, errors.New("--inject.source must name a header")
	}
	var prefixes []netip.Prefix
	for _, s := range f.injectTrusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("--inject.trusted-sources: %q is neither a CIDR nor an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		prefixes = append(prefixes, p)
	}
	// The label name was checked above; the identity is substituted after
	// parsing, so it cannot change the selector.
	sel, err := policy.ParseTemplate(fmt.Sprintf(`{%s="{{ .User }}"}`, f.injectLabel))
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{
		// As the PromAuthProxy did, alerts named "<identity>: ..." are the
		// identity's too.
		Upstreams: config.Upstreams{Prometheus: &config.Upstream{URL: f.upstreamProm, Timeout: f.upstreamTO, AlertsByNamePrefix: true}},
		Authentication: config.Authentication{
			TrustedHeader: &config.TrustedHeader{Name: f.injectSource, Prefixes: prefixes},
			BruteForce:    config.BruteForce{MaxFailures: config.DefaultMaxFailures, Window: config.DefaultFailureWindow},
		},
		WebUsers: webUsers.Users,
		Rules: []policy.Rule{{
			Name:      "inject-" + f.injectLabel,
			Subjects:  []policy.Subject{{Kind: policy.SubjectEveryone}},
			Selectors: []*policy.Template{sel},
		}},
	}
	if f.upstreamAM != "" {
		cfg.Upstreams.Alertmanager = &config.Upstream{URL: f.upstreamAM, Timeout: f.upstreamTO}
	}
	return cfg, nil
}
