package types

import "time"

// Certificate statuses (the words flyctl shows).
const (
	CertAwaiting = "Awaiting certificates"
	CertReady    = "Ready"
	CertFailed   = "Failed"
)

// Certificate describes one custom hostname of an app and its TLS
// certificate (GET /v1/apps/{app}/certificates/{hostname}).
type Certificate struct {
	Hostname             string    `json:"hostname"`
	App                  string    `json:"app"`
	Source               string    `json:"source"`        // "acme" or "self-signed"
	ClientStatus         string    `json:"client_status"` // CertAwaiting, CertReady or CertFailed
	Configured           bool      `json:"configured"`    // a certificate is being served
	CertificateAuthority string    `json:"certificate_authority,omitempty"`
	DNSNames             []string  `json:"dns_names,omitempty"`
	NotBefore            time.Time `json:"not_before,omitzero"`
	NotAfter             time.Time `json:"expires_at,omitzero"`
	Serial               string    `json:"serial,omitempty"`
	Error                string    `json:"error,omitempty"`
	CreatedAt            time.Time `json:"created_at"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// CertsList is the answer of GET /v1/apps/{app}/certificates.
type CertsList struct {
	Certificates []Certificate `json:"certificates"`
}
