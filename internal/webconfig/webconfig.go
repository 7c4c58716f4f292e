// Package webconfig loads the web configuration file (--web.config.file) and
// serves promgate's listener with it.
//
// The file has exactly the format of Prometheus' --web.config.file, defined
// by prometheus/exporter-toolkit: tls_server_config, http_server_config,
// rate_limit and basic_auth_users. Every file is first validated by the
// toolkit's own web.Validate, so promgate accepts precisely the files
// Prometheus accepts, and its TLS settings are turned into a tls.Config by
// the toolkit's ConfigToTLSConfig.
//
// What promgate does differently, and why:
//
//   - The toolkit's own handler enforces basic_auth_users as a yes/no gate
//     in front of everything, which would refuse callers identified by a
//     client certificate, a trusted header or a bearer token. So promgate
//     never lets the toolkit serve: it reads basic_auth_users itself and
//     hands them to its authenticator, where they are users like those of
//     promgate.yml.
//   - The toolkit re-reads and re-parses the file on every request and
//     every TLS handshake. promgate loads it on (re)load only: the file is
//     watched like promgate.yml, and a change is reloaded within seconds.
//     Certificate and key files are still read on every handshake, as the
//     toolkit does, so a renewed certificate is served at once; they are
//     parsed again only when their content changed.
//   - TLS cannot be switched on or off by a reload (as in Prometheus): that
//     needs a restart. Everything else (certificates, client CAs, versions,
//     ciphers, headers, rate limit, users) follows the file.
package webconfig

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Config is a loaded web configuration file. It is immutable.
type Config struct {
	// File is the path it was loaded from.
	File string
	// Web is the file's content, with relative paths resolved against the
	// file's directory.
	Web web.Config
	// Users are the basic_auth_users: user name -> bcrypt hash.
	Users map[string]string

	tls     *tls.Config // nil: plain HTTP
	limiter *limiter    // nil: no rate limit
}

// Load reads and validates the web configuration file at path. The logger
// reports, at most once per content, certificate files that cannot be used
// at handshake time.
func Load(path string, logger *slog.Logger) (*Config, error) {
	if logger == nil {
		logger = slog.Default()
	}
	// The toolkit's own validation first: a file promgate accepts is one
	// Prometheus accepts. It reads the file and the certificates.
	if err := web.Validate(path); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Config{File: path, Web: web.Config{
		// The toolkit's defaults.
		TLSConfig: web.TLSConfig{
			MinVersion:               tls.VersionTLS12,
			MaxVersion:               tls.VersionTLS13,
			PreferServerCipherSuites: true,
		},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c.Web); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Web.TLSConfig.SetDirectory(filepath.Dir(path))

	var errs []error
	c.Users = make(map[string]string, len(c.Web.Users))
	for user, hash := range c.Web.Users {
		switch {
		case user == "":
			errs = append(errs, errors.New("basic_auth_users: user name must not be empty"))
		case strings.ContainsRune(user, ':'):
			errs = append(errs, fmt.Errorf("basic_auth_users: user name %q must not contain ':'", user))
		}
		// Checked again on the bytes parsed here, which the file may have
		// changed to since web.Validate read it. The hash is not printed.
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			errs = append(errs, fmt.Errorf("basic_auth_users: user %q: password is not a valid bcrypt hash", user))
		}
		c.Users[user] = string(hash)
	}
	if rl := c.Web.RateLimiterConfig; rl.Interval < 0 || rl.Burst < 0 {
		errs = append(errs, errors.New("rate_limit: interval and burst must not be negative"))
	} else if rl.Interval > 0 {
		c.limiter = newLimiter(rl.Interval, rl.Burst)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", path, errors.Join(errs...))
	}

	if c.Web.TLSConfig.IsEnabled() {
		t, err := web.ConfigToTLSConfig(&c.Web.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		loader := &certLoader{tc: &c.Web.TLSConfig, logger: logger}
		if _, err := loader.load(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		t.GetCertificate = loader.get
		if verify := t.VerifyPeerCertificate; verify != nil {
			// The toolkit's SAN check indexes the first certificate; with
			// VerifyClientCertIfGiven a client may send none, and a client
			// without a certificate cannot have an allowed SAN.
			t.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("client_allowed_sans: no client certificate")
				}
				return verify(raw, chains)
			}
		}
		c.tls = t
	}
	return c, nil
}

// TLS reports whether the file enables TLS.
func (c *Config) TLS() bool { return c != nil && c.tls != nil }

// VerifiesClientCertificates reports whether the TLS layer verifies client
// certificates against a client CA, so that a certificate can name a user.
func (c *Config) VerifiesClientCertificates() bool {
	return c.TLS() && c.tls.ClientCAs != nil &&
		(c.tls.ClientAuth == tls.VerifyClientCertIfGiven || c.tls.ClientAuth == tls.RequireAndVerifyClientCert)
}

// Files lists the files whose change needs a reload: the file itself and
// the client CA file. (Certificate and key files are read on every
// handshake.)
func (c *Config) Files() []string {
	if c == nil {
		return nil
	}
	fs := []string{c.File}
	if c.Web.TLSConfig.ClientCAs != "" {
		fs = append(fs, c.Web.TLSConfig.ClientCAs)
	}
	return fs
}

// certLoader serves the certificate of tls_server_config, reading the
// files on every handshake (so that a renewed certificate is served at
// once) but parsing them only when their content changed.
type certLoader struct {
	tc     *web.TLSConfig
	logger *slog.Logger

	mu     sync.Mutex
	sum    [sha256.Size]byte // of the files' content that cert was parsed from
	cert   *tls.Certificate
	badSum [sha256.Size]byte // content last reported as unusable
}

// read returns the certificate and key PEM.
func (l *certLoader) read() (certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM = []byte(l.tc.TLSCert), []byte(l.tc.TLSKey)
	if l.tc.TLSCertPath != "" {
		if certPEM, err = os.ReadFile(l.tc.TLSCertPath); err != nil {
			return nil, nil, fmt.Errorf("cert_file: %w", err)
		}
	}
	if l.tc.TLSKeyPath != "" {
		if keyPEM, err = os.ReadFile(l.tc.TLSKeyPath); err != nil {
			return nil, nil, fmt.Errorf("key_file: %w", err)
		}
	}
	return certPEM, keyPEM, nil
}

// load reads the files and parses them if they changed.
func (l *certLoader) load() (*tls.Certificate, error) {
	certPEM, keyPEM, err := l.read()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cert != nil && sum == l.sum {
		return l.cert, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		err = fmt.Errorf("loading the certificate and key: %w", err)
		if l.cert != nil && sum != l.badSum {
			l.badSum = sum
			l.logger.Warn("the certificate and key files do not form a valid pair (yet); serving the previous certificate", "err", err)
		}
		return nil, err
	}
	l.sum, l.cert = sum, &cert
	return l.cert, nil
}

// get is tls.Config.GetCertificate. While the files are unreadable or do
// not match (a renewal that replaced the certificate before the key), the
// last good certificate is served rather than failing every handshake.
func (l *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := l.load()
	if err == nil {
		return cert, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cert != nil {
		return l.cert, nil
	}
	return nil, err
}

// limiter implements rate_limit as the toolkit does, with
// golang.org/x/time/rate: one token every interval, at most burst saved,
// except that a burst below 1 counts as 1 (the toolkit would refuse every
// request).
type limiter struct {
	every time.Duration
	lim   *rate.Limiter
}

func newLimiter(every time.Duration, burst int) *limiter {
	return &limiter{every: every, lim: rate.NewLimiter(rate.Every(every), max(burst, 1))}
}

func (l *limiter) allow(now time.Time) bool { return l.lim.AllowN(now, 1) }
