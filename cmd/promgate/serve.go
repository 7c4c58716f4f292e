package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/promgate/promgate/internal/audit"
	"github.com/promgate/promgate/internal/auth"
	"github.com/promgate/promgate/internal/config"
	"github.com/promgate/promgate/internal/server"
	"github.com/promgate/promgate/internal/webconfig"
)

// Values of --web.reload. admin-or-localhost, the former default, let any
// authenticated caller from a loopback address reload, which behind a
// proxy on the same host is every tenant; it is kept so that command lines
// naming it still start, and means admin.
const (
	reloadAdmin            = "admin"
	reloadOff              = "off"
	reloadAdminOrLocalhost = "admin-or-localhost"
)

// loaded is one consistent configuration: the web configuration file,
// promgate.yml joined by the web file's users, and the state built from
// them.
type loaded struct {
	web *webconfig.Config // nil without --web.config.file
	cfg *config.Config
	st  *server.State
}

// files lists the files the configuration was read from, which the
// reloader watches.
func (l *loaded) files(f flags) []string {
	var fs []string
	if f.configFile != "" {
		fs = append(fs, f.configFile)
	}
	fs = append(fs, l.web.Files()...)
	return append(fs, l.cfg.Files()...)
}

// loadFiles reads the web configuration file and promgate.yml and checks
// that they fit together.
func loadFiles(f flags, logger *slog.Logger) (*webconfig.Config, *config.Config, error) {
	var web *webconfig.Config
	if f.webConfig != "" {
		var err error
		if web, err = webconfig.Load(f.webConfig, logger); err != nil {
			return nil, nil, err
		}
	}
	cfg, err := loadConfig(f, web)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Authentication.ClientCertificate != nil && !web.VerifiesClientCertificates() {
		// Without verification a client certificate proves nothing; the
		// authenticator refuses unverified certificates anyway, but a
		// configuration that can never work is better refused at load.
		return nil, nil, errors.New("authentication.client_certificate needs a web configuration file (--web.config.file) whose tls_server_config has a client_ca_file and client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert")
	}
	return web, cfg, nil
}

// load reads every configuration file and builds the state.
func load(f flags, bo server.BuildOptions, logger *slog.Logger) (*loaded, error) {
	web, cfg, err := loadFiles(f, logger)
	if err != nil {
		return nil, err
	}
	st, err := server.Build(cfg, bo, logger)
	if err != nil {
		return nil, err
	}
	return &loaded{web: web, cfg: cfg, st: st}, nil
}

func serveGateway(f flags, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

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
	bo := server.BuildOptions{
		MaxBodyBytes: f.maxBody,
		MaxIdleConns: f.maxIdleConns,
		PublicPrefix: public,
		// One Guard for the life of the process: a reload must not reset
		// the failed-login counts.
		Auth: auth.Runtime{Guard: auth.NewGuard(), Logger: logger},
		// One set of audit files for the process: SIGUSR1 reopens them
		// after logrotate moved them, whichever configuration named them.
		AuditFiles: audit.NewFiles(),
	}

	first, err := load(f, bo, logger)
	if err != nil {
		return err
	}
	webSrv := webconfig.NewServer(first.web, logger)
	rl := newReloader(f, bo, logger, reg, webSrv)
	if f.reloadAccess == reloadAdminOrLocalhost {
		logger.Warn("--web.reload=admin-or-localhost is read as admin: a loopback address proves nothing behind a proxy on the same host; use --web.internal-listen-address for local tools")
	}
	opts := server.Options{
		Logger:               logger,
		RoutePrefix:          prefix,
		Registry:             reg,
		Reload:               func() error { return rl.reload("HTTP /-/reload") },
		PublicReload:         f.reloadAccess != reloadOff,
		MetricsForAdminsOnly: f.internalListen != "",
	}
	srv := server.New(opts, first.st)
	rl.start(srv, first)

	httpSrv := &http.Server{
		Handler:           webSrv.Wrap(srv),
		ReadHeaderTimeout: f.readHeaderTO,
		IdleTimeout:       f.idleTO,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				_ = rl.reload("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	// Registered before serving: SIGUSR1's default action ends the process.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go reopenAudit(ctx, usr1, bo.AuditFiles, logger)
	if f.autoReload > 0 {
		go rl.watch(ctx, f.autoReload)
	}

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	// The internal listener is plain HTTP without authentication: it is
	// for the operator's private address (as vmauth's
	// -httpInternalListenAddr), never for tenants.
	var internalSrv *http.Server
	var internalLn net.Listener
	if f.internalListen != "" {
		if internalLn, err = net.Listen("tcp", f.internalListen); err != nil {
			ln.Close()
			return fmt.Errorf("--web.internal-listen-address: %w", err)
		}
		internalSrv = &http.Server{
			Handler:           srv.Internal(),
			ReadHeaderTimeout: f.readHeaderTO,
			IdleTimeout:       f.idleTO,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- webSrv.Serve(httpSrv, ln) }()
	internalAddr := ""
	if internalSrv != nil {
		internalAddr = internalLn.Addr().String()
		go func() { errc <- internalSrv.Serve(internalLn) }()
	}
	logger.Info("promgate started", "listen", ln.Addr().String(), "internal_listen", internalAddr, "route_prefix", prefix,
		"web_config", f.webConfig, "auto_reload_interval", f.autoReload)
	select {
	case err := <-errc:
		if internalSrv != nil {
			_ = internalSrv.Close()
		}
		_ = httpSrv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimout)
	defer cancel()
	if internalSrv != nil {
		// Kept until the tenants' requests are done, so that its
		// readiness and metrics stay reachable meanwhile.
		defer func() { _ = internalSrv.Shutdown(sctx) }()
	}
	return httpSrv.Shutdown(sctx)
}

// reopenAudit reopens the audit files on each signal (SIGUSR1, as
// logrotate's postrotate sends), until ctx ends.
func reopenAudit(ctx context.Context, usr1 <-chan os.Signal, files *audit.Files, logger *slog.Logger) {
	for {
		select {
		case <-usr1:
			if err := files.Reopen(); err != nil {
				logger.Error("audit log not reopened", "err", err)
			} else {
				logger.Info("audit log reopened")
			}
		case <-ctx.Done():
			return
		}
	}
}
