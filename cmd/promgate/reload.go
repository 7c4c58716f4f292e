package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promgate/promgate/internal/server"
	"github.com/promgate/promgate/internal/webconfig"
)

// reloader reloads the configuration on SIGHUP, on POST /-/reload and when
// a configuration file changes on disk. Reloads are serialised. A new
// configuration is built completely (web configuration, promgate.yml, state)
// before it replaces the old one, so an invalid one changes nothing: it is
// logged, promgate_config_last_reload_successful drops to 0, and the old
// configuration keeps serving.
type reloader struct {
	f      flags
	bo     server.BuildOptions
	logger *slog.Logger
	web    *webconfig.Server
	srv    *server.Server

	ok, ts prometheus.Gauge

	mu sync.Mutex
	// seen maps each watched file to the fingerprint of the content last
	// loaded, or last refused: a broken file is reported once, not on
	// every poll, and retried when it changes again.
	seen map[string]fingerprint
}

func newReloader(f flags, bo server.BuildOptions, logger *slog.Logger, reg prometheus.Registerer, web *webconfig.Server) *reloader {
	rl := &reloader{
		f: f, bo: bo, logger: logger, web: web,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded.",
		}),
		ts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promgate_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(rl.ok, rl.ts)
	return rl
}

// start records the configuration promgate started with.
func (rl *reloader) start(srv *server.Server, l *loaded) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.srv = srv
	rl.seen = fingerprints(l.files(rl.f))
	rl.ok.Set(1)
	rl.ts.SetToCurrentTime()
}

// reload loads every configuration file and, if all is valid, swaps the new
// configuration in.
func (rl *reloader) reload(trigger string) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	// Fingerprints taken before reading: a change made while loading shows
	// up at the next poll instead of being missed.
	before := map[string]fingerprint{}
	for path := range rl.seen {
		before[path] = fingerprintOf(path)
	}
	l, err := load(rl.f, rl.bo, rl.logger)
	if err == nil {
		err = rl.web.Compatible(l.web)
	}
	if err != nil {
		rl.seen = before
		rl.ok.Set(0)
		rl.logger.Error("configuration reload failed; the previous configuration keeps serving", "trigger", trigger, "err", err)
		return err
	}
	rl.web.Update(l.web)
	rl.srv.Swap(l.st)
	seen := map[string]fingerprint{}
	for _, path := range l.files(rl.f) {
		if fp, ok := before[path]; ok {
			seen[path] = fp
		} else {
			seen[path] = fingerprintOf(path)
		}
	}
	rl.seen = seen
	rl.ok.Set(1)
	rl.ts.SetToCurrentTime()
	rl.logger.Info("configuration reloaded", "trigger", trigger, "config_file", rl.f.configFile, "web_config_file", rl.f.webConfig)
	return nil
}

// watch polls the watched files every interval and reloads when one
// changed, until ctx ends. Polling the content's hash needs no dependency
// and sees every kind of change: edits in place, files replaced by rename
// (as editors and Kubernetes ConfigMaps do), modification times that do not
// move.
func (rl *reloader) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if rl.changed() {
			_ = rl.reload("file changed")
		}
	}
}

func (rl *reloader) changed() bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	for path, fp := range rl.seen {
		if fingerprintOf(path) != fp {
			return true
		}
	}
	return false
}

// fingerprint identifies a file's content; a file that cannot be read has
// the zero fingerprint with missing set.
type fingerprint struct {
	sum     [sha256.Size]byte
	missing bool
}

func fingerprintOf(path string) fingerprint {
	data, err := os.ReadFile(path)
	if err != nil {
		return fingerprint{missing: true}
	}
	return fingerprint{sum: sha256.Sum256(data)}
}

func fingerprints(paths []string) map[string]fingerprint {
	m := make(map[string]fingerprint, len(paths))
	for _, p := range paths {
		m[p] = fingerprintOf(p)
	}
	return m
}
