package types

import "time"

// Wire types of API tokens and secrets, shared by the API and the CLI.

// CreateTokenRequest is the body of POST /v1/tokens. Expiry is a Go
// duration ("720h"); none means the token does not expire.
type CreateTokenRequest struct {
	Name   string `json:"name,omitempty"`
	App    string `json:"app,omitempty"`
	Expiry string `json:"expiry,omitempty"`
}

// TokenInfo is a token as the API shows it: never its secret or hash.
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scope     string     `json:"scope"`
	Org       string     `json:"org"`
	App       string     `json:"app,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	Expired   bool       `json:"expired"`
}

// CreateTokenResponse carries the token's secret, shown this once.
type CreateTokenResponse struct {
	TokenInfo
	Token string `json:"token"`
}

// Secret is one secret as listed: never its value.
type Secret struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	Status    string `json:"status"`
	Version   int    `json:"version"` // the version that last set it
}

// SecretsList is the answer of GET and POST /v1/apps/{app}/secrets.
type SecretsList struct {
	Secrets         []Secret `json:"secrets"`
	Version         int      `json:"version"`
	DeployedVersion int      `json:"deployed_version"`
}
