package certs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/acme"
)

// ChallengePath is where the proxy's HTTP listener must route HTTP-01
// challenges (HTTPHandler does it).
const ChallengePath = "/.well-known/acme-challenge/"

// acmeClient returns the ACME client, registering the account on first use.
func (m *Manager) acmeClient(ctx context.Context) (*acme.Client, error) {
	m.acmeOnce.Lock()
	defer m.acmeOnce.Unlock()
	if m.client != nil {
		return m.client, nil
	}
	key, err := loadOrCreateKey(filepath.Join(m.o.Dir, accountKeyFile), newKey)
	if err != nil {
		return nil, err
	}
	c := &acme.Client{Key: key, DirectoryURL: m.o.ACMEDirectory, HTTPClient: m.o.HTTPClient, UserAgent: "hangar"}
	acct := &acme.Account{}
	if m.o.Email != "" {
		acct.Contact = []string{"mailto:" + m.o.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("ACME account at %s: %w", m.o.ACMEDirectory, err)
	}
	m.client = c
	return c, nil
}

// obtain runs ACME orders for a hostname, one per challenge type in order
// of preference, until one yields a certificate.
func (m *Manager) obtain(ctx context.Context, hn string) (crypto.Signer, [][]byte, error) {
	c, err := m.acmeClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, typ := range m.o.Challenges {
		key, chain, err := m.order(ctx, c, hn, typ)
		if err == nil {
			return key, chain, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", typ, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, fmt.Errorf("ACME for %s: %w", hn, errors.Join(errs...))
}

func (m *Manager) order(ctx context.Context, c *acme.Client, hn, typ string) (crypto.Signer, [][]byte, error) {
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(hn))
	if err != nil {
		return nil, nil, fmt.Errorf("new order: %w", err)
	}
	for _, zurl := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, zurl)
		if err != nil {
			return nil, nil, fmt.Errorf("authorization: %w", err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, ch := range z.Challenges {
			if ch.Type == typ {
				chal = ch
			}
		}
		if chal == nil {
			return nil, nil, fmt.Errorf("the ACME server offers no %s challenge", typ)
		}
		cleanup, err := m.present(c, hn, chal)
		if err != nil {
			return nil, nil, err
		}
		_, err = c.Accept(ctx, chal)
		if err == nil {
			_, err = c.WaitAuthorization(ctx, z.URI)
		}
		cleanup()
		if err != nil {
			return nil, nil, fmt.Errorf("authorization of %s: %w", hn, err)
		}
	}
	if o, err = c.WaitOrder(ctx, o.URI); err != nil {
		return nil, nil, fmt.Errorf("order: %w", err)
	}
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: hn}, DNSNames: []string{hn}}, key)
	if err != nil {
		return nil, nil, err
	}
	// CreateCertFromOrder, not CreateOrderCert: CAs (pebble among them)
	// need not send a Location header with the finalize response.
	der, _, err := c.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, nil, fmt.Errorf("finalize: %w", err)
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil || leaf.VerifyHostname(hn) != nil {
		return nil, nil, fmt.Errorf("the ACME server returned a certificate not valid for %s (%v)", hn, err)
	}
	return key, der, nil
}

// present makes a challenge answerable and returns its cleanup.
func (m *Manager) present(c *acme.Client, hn string, chal *acme.Challenge) (func(), error) {
	switch chal.Type {
	case "http-01":
		ka, err := c.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.tokens[chal.Token] = ka
		m.mu.Unlock()
		return func() { m.mu.Lock(); delete(m.tokens, chal.Token); m.mu.Unlock() }, nil
	case "tls-alpn-01":
		cert, err := c.TLSALPN01ChallengeCert(chal.Token, hn)
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.alpn[hn] = &cert
		m.mu.Unlock()
		return func() { m.mu.Lock(); delete(m.alpn, hn); m.mu.Unlock() }, nil
	}
	return nil, fmt.Errorf("challenge type %s is not supported", chal.Type)
}

// HTTPHandler answers HTTP-01 challenges under /.well-known/acme-challenge/
// and passes every other request to next (the proxy). Mount it on the plain
// HTTP listener, before any force_https redirect.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, ChallengePath)
		if !ok {
			if next == nil {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		m.mu.RLock()
		ka, found := m.tokens[token]
		m.mu.RUnlock()
		if !found {
			if next != nil {
				next.ServeHTTP(w, r) // an app may run its own ACME client
				return
			}
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(ka))
	})
}

// GetCertificate picks the certificate for a handshake: the TLS-ALPN-01
// challenge certificate when the client asks for `acme-tls/1`, the
// hostname's own certificate when it has one, else the default.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		if c := m.alpn[name]; c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("no TLS-ALPN-01 challenge pending for %q", name)
	}
	if h := m.hosts[name]; h != nil && h.cert != nil {
		return h.cert, nil
	}
	return m.def, nil
}

// TLSOptions are fly.toml's `[services.ports.tls_options]`.
type TLSOptions struct {
	ALPN              []string `json:"alpn,omitempty"`     // default h2, http/1.1
	Versions          []string `json:"versions,omitempty"` // "TLSv1.2", "TLSv1.3"
	DefaultSelfSigned bool     `json:"default_self_signed,omitempty"`
}

var tlsVersions = map[string]uint16{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}

// apply sets ALPN and versions on cfg.
func (o TLSOptions) apply(cfg *tls.Config) error {
	if len(o.ALPN) > 0 {
		cfg.NextProtos = slices.Clone(o.ALPN)
	}
	if len(o.Versions) > 0 {
		cfg.MinVersion, cfg.MaxVersion = 0, 0
		for _, v := range o.Versions {
			n, ok := tlsVersions[v]
			if !ok {
				return fmt.Errorf("tls_options.versions: %q is not one of TLSv1.2, TLSv1.3: %w", v, ErrInvalid)
			}
			if cfg.MinVersion == 0 || n < cfg.MinVersion {
				cfg.MinVersion = n
			}
			if n > cfg.MaxVersion {
				cfg.MaxVersion = n
			}
		}
	}
	// The TLS-ALPN-01 challenge must be negotiable whatever the app's ALPN.
	if !slices.Contains(cfg.NextProtos, acme.ALPNProto) {
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
	}
	return nil
}

// Validate checks tls_options.
func (o TLSOptions) Validate() error { return o.apply(&tls.Config{}) }

// TLSConfig returns the HTTPS listener's config: certificates from the
// Manager, HTTP/2 and HTTP/1.1 offered, TLS 1.2 at least. optionsFor, if
// not nil, gives the tls_options of the app a server name belongs to (nil
// = defaults); options that fail to validate are refused at handshake.
func (m *Manager) TLSConfig(optionsFor func(serverName string) *TLSOptions) *tls.Config {
	base := &tls.Config{
		GetCertificate: m.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
	if optionsFor != nil {
		base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			o := optionsFor(strings.ToLower(hello.ServerName))
			if o == nil {
				return nil, nil
			}
			cfg := &tls.Config{GetCertificate: m.GetCertificate, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
			if err := o.apply(cfg); err != nil {
				return nil, err
			}
			return cfg, nil
		}
	}
	return base
}

// ForceHTTPS decides fly.toml's `force_https`: for a plain-HTTP request it
// returns the https URL to answer with 301 Moved Permanently. httpsPort is
// the HTTPS listener's port ("" or "443" leave it out of the URL). ACME
// HTTP-01 challenges are never redirected.
func ForceHTTPS(r *http.Request, force bool, httpsPort string) (location string, redirect bool) {
	if !force || r.TLS != nil || strings.HasPrefix(r.URL.Path, ChallengePath) {
		return "", false
	}
	host := r.Host
	if h, _, err := splitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if httpsPort != "" && httpsPort != "443" {
		host += ":" + httpsPort
	}
	return "https://" + host + r.URL.RequestURI(), true
}

func splitHostPort(hp string) (string, string, error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("bad host")
		}
		return hp[1:end], strings.TrimPrefix(hp[end+1:], ":"), nil
	}
	if i := strings.LastIndexByte(hp, ':'); i >= 0 && strings.Count(hp, ":") == 1 {
		return hp[:i], hp[i+1:], nil
	}
	return hp, "", errors.New("no port")
}
