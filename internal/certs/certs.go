// Package certs owns Hangar's TLS certificates: the store in
// <data-dir>/certs (keys 0600, every file written atomically), a
// self-signed default certificate for app hosts (*.<domain>), one
// certificate per custom hostname issued and renewed over ACME (HTTP-01
// through the handler the proxy mounts at /.well-known/acme-challenge/, and
// TLS-ALPN-01 through GetCertificate answering `acme-tls/1`), and the
// *tls.Config the HTTPS listener uses, honouring fly.toml's `tls_options`
// and offering HTTP/2.
package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/hangar-dev/hangar/internal/types"
)

// Sources of a certificate.
const (
	SourceACME       = "acme"
	SourceSelfSigned = "self-signed"
)

// Status of a hostname's certificate. Deprecated: bridges for packages that
// still name them here; use types.CertAwaiting, CertReady and CertFailed.
const (
	StatusAwaiting = types.CertAwaiting
	StatusReady    = types.CertReady
	StatusFailed   = types.CertFailed
)

// Error categories; the API maps them to status codes.
var (
	ErrNotFound = types.NewError(types.ErrNotFound, "certificate not found")
	ErrInvalid  = types.NewError(types.ErrInvalid, "invalid certificate request")
	ErrConflict = types.NewError(types.ErrConflict, "hostname belongs to another app")
)

// Options configure a Manager.
type Options struct {
	Dir    string // <data-dir>/certs
	Domain string // apps are served at <app>.<domain>
	// ACMEDirectory is the ACME server's directory URL (default Let's
	// Encrypt). "off" disables ACME: custom hostnames get self-signed
	// certificates.
	ACMEDirectory string
	Email         string       // ACME account contact (optional)
	HTTPClient    *http.Client // for the ACME server (tests trust pebble's)
	// Challenges in order of preference: "http-01", "tls-alpn-01"
	// (default both, HTTP-01 first). When one fails the next is tried
	// with a new order.
	Challenges []string
	// RenewBefore renews a certificate this long before it expires
	// (default 30 days, or a third of its lifetime if that is shorter).
	RenewBefore time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// Info is a bridge for packages that still name the wire type here.
//
// Deprecated: use types.Certificate.
type Info = types.Certificate

type host struct {
	meta meta
	cert *tls.Certificate // nil until issued
}

// Manager keeps certificates and answers TLS handshakes.
type Manager struct {
	o   Options
	log *slog.Logger

	mu       sync.RWMutex // guards hosts, def, tokens, alpn, issuing
	hosts    map[string]*host
	def      *tls.Certificate
	tokens   map[string]string           // HTTP-01 token -> key authorization
	alpn     map[string]*tls.Certificate // hostname -> TLS-ALPN-01 cert
	issuing  map[string]chan struct{}    // hostname -> closed when issuance ends
	acmeOnce sync.Mutex                  // serializes account setup
	client   *acme.Client
}

// New opens the store in o.Dir, loading every certificate, and creates the
// default certificate on first start.
func New(o Options) (*Manager, error) {
	if o.Dir == "" {
		return nil, errors.New("certs: no directory")
	}
	if o.ACMEDirectory == "" {
		o.ACMEDirectory = acme.LetsEncryptURL
	}
	if len(o.Challenges) == 0 {
		o.Challenges = []string{"http-01", "tls-alpn-01"}
	}
	if o.RenewBefore <= 0 {
		o.RenewBefore = 30 * 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Domain = strings.ToLower(strings.TrimSuffix(o.Domain, "."))
	m := &Manager{o: o, log: o.Log, hosts: map[string]*host{}, tokens: map[string]string{},
		alpn: map[string]*tls.Certificate{}, issuing: map[string]chan struct{}{}}
	if err := os.MkdirAll(filepath.Join(o.Dir, hostsDir), 0o700); err != nil {
		return nil, fmt.Errorf("certs dir %s: %w", o.Dir, err)
	}
	if err := m.loadDefault(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(o.Dir, hostsDir))
	if err != nil {
		return nil, fmt.Errorf("certs dir %s: %w", o.Dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(o.Dir, hostsDir, e.Name())
		md, err := readMeta(dir)
		if err != nil {
			m.log.Warn("skipping certificate directory", "dir", dir, "err", err)
			continue
		}
		h := &host{meta: md}
		if c, err := loadPair(dir); err == nil {
			h.cert = c
		} else if md.Status == types.CertReady {
			h.meta.Status, h.meta.Error = types.CertAwaiting, "certificate files unreadable, will be issued again: "+err.Error()
		}
		m.hosts[md.Hostname] = h
	}
	return m, nil
}

// Domain is the apps' domain the default certificate covers.
func (m *Manager) Domain() string { return m.o.Domain }

func (m *Manager) hostDir(h string) string { return filepath.Join(m.o.Dir, hostsDir, h) }

// loadDefault loads the default certificate, (re)creating it when missing
// or expiring.
func (m *Manager) loadDefault() error {
	dir := filepath.Join(m.o.Dir, defaultDir)
	c, err := loadPair(dir)
	names := m.defaultNames()
	if err == nil && slices.Equal(c.Leaf.DNSNames, names) && c.Leaf.NotAfter.Sub(m.o.Now()) > m.o.RenewBefore {
		m.mu.Lock()
		m.def = c
		m.mu.Unlock()
		return nil
	}
	key, chain, err := selfSigned(names, m.o.Now(), 365*24*time.Hour)
	if err != nil {
		return fmt.Errorf("default certificate: %w", err)
	}
	if err := saveCert(dir, key, chain); err != nil {
		return fmt.Errorf("default certificate: %w", err)
	}
	c, err = loadPair(dir)
	if err != nil {
		return fmt.Errorf("default certificate: %w", err)
	}
	m.mu.Lock()
	m.def = c
	m.mu.Unlock()
	m.log.Info("created self-signed default certificate", "names", names, "expires", c.Leaf.NotAfter)
	return nil
}

func (m *Manager) defaultNames() []string {
	if m.o.Domain == "" {
		return []string{"localhost"}
	}
	return []string{"*." + m.o.Domain, m.o.Domain}
}

func newKey() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// selfSigned makes a self-signed certificate for names.
func selfSigned(names []string, now time.Time, life time.Duration) (crypto.Signer, [][]byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Hangar self-signed"}},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	return key, [][]byte{der}, nil
}

func (m *Manager) info(h *host) types.Certificate {
	in := types.Certificate{Hostname: h.meta.Hostname, App: h.meta.App, Source: h.meta.Source, ClientStatus: h.meta.Status,
		Error: h.meta.Error, CreatedAt: h.meta.CreatedAt, UpdatedAt: h.meta.UpdatedAt}
	if c := h.cert; c != nil {
		in.Configured = true
		in.DNSNames = c.Leaf.DNSNames
		in.NotBefore, in.NotAfter = c.Leaf.NotBefore, c.Leaf.NotAfter
		in.Serial = c.Leaf.SerialNumber.Text(16)
		in.CertificateAuthority = c.Leaf.Issuer.CommonName
		if len(c.Leaf.Issuer.Organization) > 0 && in.CertificateAuthority == "" {
			in.CertificateAuthority = c.Leaf.Issuer.Organization[0]
		}
	}
	return in
}

// List returns an app's hostnames ("" = all apps), sorted.
func (m *Manager) List(app string) []types.Certificate {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []types.Certificate
	for _, h := range m.hosts {
		if app == "" || h.meta.App == app {
			out = append(out, m.info(h))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// Get returns one hostname of an app.
func (m *Manager) Get(app, hostname string) (types.Certificate, error) {
	hn, err := normalizeHost(hostname)
	if err != nil {
		return types.Certificate{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	h := m.hosts[hn]
	if h == nil || (app != "" && h.meta.App != app) {
		return types.Certificate{}, fmt.Errorf("hostname %s of app %s: %w", hn, app, ErrNotFound)
	}
	return m.info(h), nil
}

// AppForHost returns the app a custom hostname belongs to ("" if none):
// the proxy routes such hosts to that app.
func (m *Manager) AppForHost(hostname string) string {
	hn := strings.TrimSuffix(strings.ToLower(hostname), ".")
	if i := strings.LastIndexByte(hn, ':'); i >= 0 && !strings.Contains(hn[i:], "]") {
		hn = hn[:i]
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if h := m.hosts[hn]; h != nil {
		return h.meta.App
	}
	return ""
}

// Add registers a hostname for an app and starts getting its certificate
// in the background (Check or Wait report the outcome). Adding a hostname
// the app already has is not an error.
func (m *Manager) Add(app, hostname string) (types.Certificate, error) {
	hn, err := normalizeHost(hostname)
	if err != nil {
		return types.Certificate{}, err
	}
	if app == "" {
		return types.Certificate{}, fmt.Errorf("hostname %s: no app: %w", hn, ErrInvalid)
	}
	if m.o.Domain != "" && (hn == m.o.Domain || strings.HasSuffix(hn, "."+m.o.Domain)) {
		return types.Certificate{}, fmt.Errorf("hostname %s is under the apps' domain %s, which the default certificate covers: %w", hn, m.o.Domain, ErrInvalid)
	}
	m.mu.Lock()
	h := m.hosts[hn]
	if h != nil && h.meta.App != app {
		owner := h.meta.App
		m.mu.Unlock()
		return types.Certificate{}, fmt.Errorf("hostname %s belongs to app %s: %w", hn, owner, ErrConflict)
	}
	if h == nil {
		now := m.o.Now().UTC()
		src := SourceACME
		if m.acmeOff() {
			src = SourceSelfSigned
		}
		h = &host{meta: meta{Hostname: hn, App: app, Source: src, Status: types.CertAwaiting, CreatedAt: now, UpdatedAt: now}}
		if err := writeMeta(m.hostDir(hn), h.meta); err != nil {
			m.mu.Unlock()
			return types.Certificate{}, fmt.Errorf("hostname %s: %w", hn, err)
		}
		m.hosts[hn] = h
	}
	in := m.info(h)
	m.mu.Unlock()
	if in.ClientStatus != types.CertReady {
		m.startIssue(hn)
	}
	return in, nil
}

func (m *Manager) acmeOff() bool { return m.o.ACMEDirectory == "off" }

// Remove forgets a hostname and deletes its files.
func (m *Manager) Remove(app, hostname string) error {
	hn, err := normalizeHost(hostname)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hosts[hn]
	if h == nil || (app != "" && h.meta.App != app) {
		return fmt.Errorf("hostname %s of app %s: %w", hn, app, ErrNotFound)
	}
	// Rename first so a crash never leaves half a directory under hosts/.
	trash := filepath.Join(m.o.Dir, hostsDir, ".removed-"+hn)
	_ = os.RemoveAll(trash)
	if err := os.Rename(m.hostDir(hn), trash); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove hostname %s: %w", hn, err)
	}
	_ = os.RemoveAll(trash)
	delete(m.hosts, hn)
	return nil
}

// RemoveApp removes every hostname of an app (when the app is deleted).
func (m *Manager) RemoveApp(app string) error {
	var errs []error
	for _, in := range m.List(app) {
		if err := m.Remove(app, in.Hostname); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Check returns a hostname's state; a hostname that is not ready gets
// another issuance attempt, which Check waits for until ctx ends.
func (m *Manager) Check(ctx context.Context, app, hostname string) (types.Certificate, error) {
	in, err := m.Get(app, hostname)
	if err != nil {
		return in, err
	}
	if in.ClientStatus != types.CertReady {
		done := m.startIssue(in.Hostname)
		select {
		case <-done:
		case <-ctx.Done():
		}
		return m.Get(app, hostname)
	}
	return in, nil
}

// Wait waits until a hostname's current issuance attempt ends (or ctx).
func (m *Manager) Wait(ctx context.Context, hostname string) (types.Certificate, error) {
	hn, err := normalizeHost(hostname)
	if err != nil {
		return types.Certificate{}, err
	}
	m.mu.RLock()
	done := m.issuing[hn]
	m.mu.RUnlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return types.Certificate{}, ctx.Err()
		}
	}
	return m.Get("", hn)
}

// startIssue starts issuance for a hostname unless one is running, and
// returns a channel closed when it ends.
func (m *Manager) startIssue(hn string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if done := m.issuing[hn]; done != nil {
		return done
	}
	done := make(chan struct{})
	m.issuing[hn] = done
	go func() {
		defer func() {
			m.mu.Lock()
			delete(m.issuing, hn)
			m.mu.Unlock()
			close(done)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := m.issue(ctx, hn); err != nil {
			m.log.Warn("certificate issuance failed", "hostname", hn, "err", err)
		}
	}()
	return done
}

// issue gets a certificate for a hostname and records the outcome.
func (m *Manager) issue(ctx context.Context, hn string) error {
	var (
		key   crypto.Signer
		chain [][]byte
		err   error
	)
	if m.acmeOff() {
		key, chain, err = selfSigned([]string{hn}, m.o.Now(), 90*24*time.Hour)
	} else {
		key, chain, err = m.obtain(ctx, hn)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hosts[hn]
	if h == nil {
		return fmt.Errorf("hostname %s was removed during issuance", hn)
	}
	md := h.meta
	md.UpdatedAt = m.o.Now().UTC()
	if err != nil {
		md.Error = err.Error()
		if h.cert == nil {
			md.Status = types.CertFailed
		}
		h.meta = md
		_ = writeMeta(m.hostDir(hn), md)
		return err
	}
	dir := m.hostDir(hn)
	if err := saveCert(dir, key, chain); err != nil {
		return fmt.Errorf("hostname %s: save certificate: %w", hn, err)
	}
	c, err := loadPair(dir)
	if err != nil {
		return fmt.Errorf("hostname %s: reload certificate: %w", hn, err)
	}
	md.Status, md.Error = types.CertReady, ""
	if err := writeMeta(dir, md); err != nil {
		return fmt.Errorf("hostname %s: %w", hn, err)
	}
	h.meta, h.cert = md, c
	m.log.Info("certificate issued", "hostname", hn, "app", md.App, "expires", c.Leaf.NotAfter, "issuer", c.Leaf.Issuer.CommonName)
	return nil
}

// due reports whether a certificate should be renewed now.
func (m *Manager) due(leaf *x509.Certificate) bool {
	before := m.o.RenewBefore
	if third := leaf.NotAfter.Sub(leaf.NotBefore) / 3; third < before {
		before = third
	}
	return leaf.NotAfter.Sub(m.o.Now()) < before
}

// RenewDue is one tick of the renewal loop: it renews every certificate
// that is due (and retries hostnames still waiting for one), waits for
// those attempts, and returns the hostnames it renewed.
func (m *Manager) RenewDue(ctx context.Context) ([]string, error) {
	if err := m.loadDefault(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	var todo []string
	old := map[string]*tls.Certificate{}
	for hn, h := range m.hosts {
		if h.cert == nil || m.due(h.cert.Leaf) {
			todo = append(todo, hn)
			old[hn] = h.cert
		}
	}
	m.mu.RUnlock()
	sort.Strings(todo)
	var renewed []string
	var errs []error
	for _, hn := range todo {
		select {
		case <-m.startIssue(hn):
		case <-ctx.Done():
			return renewed, ctx.Err()
		}
		m.mu.RLock()
		h := m.hosts[hn]
		ok := h != nil && h.cert != nil && h.cert != old[hn]
		var msg string
		if h != nil {
			msg = h.meta.Error
		}
		m.mu.RUnlock()
		if ok {
			renewed = append(renewed, hn)
		} else if msg != "" {
			errs = append(errs, fmt.Errorf("hostname %s: %s", hn, msg))
		}
	}
	return renewed, errors.Join(errs...)
}

// Run renews certificates every interval (default 12 h) until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 12 * time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.RenewDue(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("certificate renewal", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
