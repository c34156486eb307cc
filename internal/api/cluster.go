package api

// The cluster (a Hangar extension): join tokens for new hosts and the list
// of the cluster's hosts. Served only by a daemon in a cluster
// (`hangar server --cluster-init` or `--join`); org tokens only.

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Cluster is this host's part in a cluster (cluster.Node).
type Cluster interface {
	// NewJoinToken makes a one-time join token valid for ttl (0: the
	// default) and returns it with its expiry.
	NewJoinToken(ctx context.Context, ttl time.Duration) (string, time.Time, error)
	// JoinURL is a voting member's cluster listener (this host's if it
	// is one), for --join.
	JoinURL(ctx context.Context) string
	Members(ctx context.Context) (types.ClusterMembers, error)
}

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request) error {
	if s.cluster == nil {
		return notInCluster()
	}
	var req types.JoinTokenRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return badRequest("ttl %q: a positive duration like \"1h\"", req.TTL)
		}
		ttl = d
	}
	tok, exp, err := s.cluster.NewJoinToken(r.Context(), ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, types.JoinTokenResponse{Token: tok, ExpiresAt: exp, JoinURL: s.cluster.JoinURL(r.Context())})
	return nil
}

func (s *Server) clusterMembers(w http.ResponseWriter, r *http.Request) error {
	if s.cluster == nil {
		return notInCluster()
	}
	ms, err := s.cluster.Members(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ms)
	return nil
}

var errNotInCluster = types.NewError(types.ErrConflict, "this daemon is not in a cluster")

func notInCluster() error {
	return fmt.Errorf("%w: start the first host with `hangar server --cluster-init`, the others with --join (docs/cluster-join.md)", errNotInCluster)
}
