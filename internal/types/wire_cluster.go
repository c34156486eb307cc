package types

import "time"

// Wire types of the cluster routes (docs/cluster-join.md).

// JoinTokenRequest is the body of POST /v1/cluster/join-tokens.
type JoinTokenRequest struct {
	// TTL is how long the token may be used, a Go duration between 1m
	// and 168h (default 1h).
	TTL string `json:"ttl,omitempty"`
}

// JoinTokenResponse carries a new one-time join token; its secret is in
// this answer only.
type JoinTokenResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// JoinURL is the answering host's cluster listener, for --join.
	JoinURL string `json:"join_url"`
}

// ClusterMembers is the answer of GET /v1/cluster/members.
type ClusterMembers struct {
	ClusterID string          `json:"cluster_id"`
	Voters    int             `json:"voters"`
	Quorum    bool            `json:"quorum"`
	Members   []ClusterMember `json:"members"`
}

// ClusterMember is one host of a cluster.
type ClusterMember struct {
	Name       string `json:"name"`
	Region     string `json:"region"`
	Role       string `json:"role"` // voter or client
	ClusterURL string `json:"cluster_url"`
	ClientURL  string `json:"client_url,omitempty"`
	Leader     bool   `json:"leader,omitempty"`
	Learner    bool   `json:"learner,omitempty"`
	// Health of a voter's etcd member: healthy, unreachable, or no
	// leader; empty for a client (its host registration says more).
	Health   string    `json:"health,omitempty"`
	JoinedAt time.Time `json:"joined_at"`
}
