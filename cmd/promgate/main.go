// Command promgate is a multi-tenant access gateway for Prometheus: it
// authenticates each request, maps the caller to a policy of label
// selectors and enforces it on every endpoint.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/policy"
	"github.com/promgate/promgate/internal/server"
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
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f flags
	app := kingpin.New("promgate", "Multi-tenant access gateway for Prometheus.")
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	app.Terminate(nil)
	app.HelpFlag.Short('h')

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
	app.Flag("log.level", "Log level: debug, info, warn, error.").Default("info").EnumVar(&f.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Log format: logfmt or json.").Default("logfmt").EnumVar(&f.logFormat, "logfmt", "json")

	check := app.Command("check", "Check configuration files.")
	checkConfig := check.Command("config", "Validate a promgate.yml; exit 1 naming the line and reason.")
	checkConfig.Arg("file", "The configuration file.").Required().StringVar(&f.checkFile)

	hash := app.Command("hash-password", "Read a password on stdin and print its bcrypt hash.")
	hash.Flag("cost", "bcrypt cost.").Default("10").IntVar(&f.hashCost)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "promgate: %v\n", err)
		return 2
	}
	logger := newLogger(f.logLevel, f.logFormat, stderr)
	switch cmd {
	case checkConfig.FullCommand():
		if _, err := config.LoadFile(f.checkFile); err != nil {
			fmt.Fprintf(stderr, "%s FAILED:\n%v\n", f.checkFile, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s SUCCESS\n", f.checkFile)
		return 0
	case hash.FullCommand():
		return hashPassword(stdin, stdout, stderr, f.hashCost)
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
func loadConfig(f flags) (*config.Config, error) {
	if f.configFile != "" {
		return config.LoadFile(f.configFile)
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
		Upstreams: config.Upstreams{Prometheus: &config.Upstream{URL: f.upstreamProm, Timeout: f.upstreamTO}},
		Authentication: config.Authentication{TrustedHeader: &config.TrustedHeader{
			Name: f.injectSource, Prefixes: prefixes,
		}},
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

func serveGateway(f flags, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reloadOK := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "promgate_config_last_reload_successful",
		Help: "Whether the last configuration reload succeeded.",
	})
	reloadTime := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "promgate_config_last_reload_success_timestamp_seconds",
		Help: "Time of the last successful configuration reload.",
	})
	reg.MustRegister(reloadOK, reloadTime)

	// Clients reach promgate under the external URL's path; it serves under
	// the route prefix, which defaults to that path (nginx may strip it).
	public := ""
	if f.externalURL != "" {
		u, err := url.Parse(f.externalURL)
		if err != nil {
			return fmt.Errorf("--web.external-url: %w", err)
		}
		public = strings.TrimSuffix(u.Path, "/")
	}
	prefix := f.routePrefix
	if prefix == "" {
		prefix = public
	}
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	if f.externalURL == "" {
		public = strings.TrimSuffix(prefix, "/")
	}
	bo := server.BuildOptions{MaxBodyBytes: f.maxBody, MaxIdleConns: f.maxIdleConns, PublicPrefix: public}
	cfg, err := loadConfig(f)
	if err != nil {
		return err
	}
	st, err := server.Build(cfg, bo, logger)
	if err != nil {
		return err
	}
	reloadOK.Set(1)
	reloadTime.SetToCurrentTime()


	var srv *server.Server
	reload := func() error {
		if f.configFile == "" {
			return errors.New("nothing to reload in the zero-config mode")
		}
		cfg, err := config.LoadFile(f.configFile)
		if err == nil {
			var st *server.State
			if st, err = server.Build(cfg, bo, logger); err == nil {
				srv.Swap(st)
			}
		}
		if err != nil {
			reloadOK.Set(0)
			logger.Error("configuration reload failed; the previous configuration keeps serving", "err", err)
			return err
		}
		reloadOK.Set(1)
		reloadTime.SetToCurrentTime()
		logger.Info("configuration reloaded", "file", f.configFile)
		return nil
	}
	srv = server.New(server.Options{Logger: logger, RoutePrefix: prefix, Registry: reg, Reload: reload}, st)

	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: f.readHeaderTO,
		IdleTimeout:       f.idleTO,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = reload()
		}
	}()

	errc := make(chan error, 1)
	go func() {
		listen := []string{f.listen}
		errc <- web.ListenAndServe(httpSrv, &web.FlagConfig{
			WebListenAddresses: &listen,
			WebSystemdSocket:   new(bool),
			WebConfigFile:      &f.webConfig,
		}, logger)
	}()
	logger.Info("promgate started", "listen", f.listen, "route_prefix", prefix)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimout)
	defer cancel()
	return httpSrv.Shutdown(sctx)
}
