package types

// PgConsensus is where a Hangar Postgres cluster's Patroni keeps its
// leader key (POST /v1/apps/{app}/pg/consensus): an etcd, a user that may
// use only the cluster's keys, and Patroni's namespace and scope. The
// user's password is never in it: the daemon stores it as the app's
// PgConsensusSecret secret, which the members get in their environment.
type PgConsensus struct {
	Endpoints []string `json:"endpoints"`
	Username  string   `json:"username"`
	Namespace string   `json:"namespace"`
	Scope     string   `json:"scope"`
}

// PgConsensusSecret is the app secret holding the etcd user's password
// (the name Patroni reads it from).
const PgConsensusSecret = "PATRONI_ETCD3_PASSWORD"
