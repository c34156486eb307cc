package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// Secrets endpoints, with Fly's paths and shapes:
//
//	GET    /v1/apps/{app}/secrets          {"secrets": [{name, digest, created_at, updated_at, status, version}], "version", "deployed_version"}
//	POST   /v1/apps/{app}/secrets          {"values": {"NAME": "value", "OLD": null}} → {"secrets": [...], "version"}
//	POST   /v1/apps/{app}/secrets/{secret_name}   {"value": "..."} → the secret
//	DELETE /v1/apps/{app}/secrets/{secret_name}   → {"version"}
//
// and Hangar's roll-out of the latest version to the app's machines (what
// `secrets set` without --stage and `secrets deploy` call), streamed as
// NDJSON DeployLines:
//
//	POST   /v1/apps/{app}/secrets_deploy
//
// Values go in and never come out: show_secrets is refused.
func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/apps/{app}/secrets", s.listSecrets)
		h("POST /v1/apps/{app}/secrets", s.updateSecrets)
		h("POST /v1/apps/{app}/secrets/{secret_name}", s.setSecret)
		h("DELETE /v1/apps/{app}/secrets/{secret_name}", s.unsetSecret)
		h("POST /v1/apps/{app}/secrets_deploy", s.deploySecrets)
	})
	for k, v := range map[string]OpDoc{
		"GET /v1/apps/{app}/secrets":                  {ID: "Secrets_list", Summary: "List secret names, digests and status (values never)", Resp: SecretsList{}, Errors: []int{400, 404}},
		"POST /v1/apps/{app}/secrets":                 {ID: "Secrets_update", Summary: "Set (value) and unset (null) secrets in one new version", Body: secretsUpdate{}, Resp: SecretsList{}, Errors: []int{400, 404}},
		"POST /v1/apps/{app}/secrets/{secret_name}":   {ID: "Secret_create", Summary: "Set one secret", Body: secretValue{}, Resp: secrets.Secret{}, Errors: []int{400, 404}},
		"DELETE /v1/apps/{app}/secrets/{secret_name}": {ID: "Secret_delete", Summary: "Unset one secret", Resp: map[string]int{}, Errors: []int{404}},
		"POST /v1/apps/{app}/secrets_deploy":          {ID: "Secrets_deploy", Summary: "Restart the app's machines with the latest secrets version; NDJSON DeployLines", Hangar: true, Errors: []int{404}},
	} {
		opDocs[k] = v
	}
}

type secretsUpdate struct {
	Values map[string]*string `json:"values"`
}

type secretValue struct {
	Value *string `json:"value"`
}

// features holds what feature files add to a Server (the Server struct
// itself belongs to api.go).
type features struct {
	secrets *secrets.Store
	volumes *volume.Manager
}

var featureMap sync.Map // *Server → *features

func (s *Server) features() *features {
	f, _ := featureMap.LoadOrStore(s, &features{})
	return f.(*features)
}

// SetSecrets gives the API the secrets store.
func (s *Server) SetSecrets(st *secrets.Store) { s.features().secrets = st }

func (s *Server) secretStore() (*secrets.Store, error) {
	st := s.features().secrets
	if st == nil {
		return nil, fmt.Errorf("secrets are not configured on this daemon: %w", errNotFound)
	}
	return st, nil
}

// appSecrets is the app a secrets request names (it must exist) and the
// daemon's secrets store.
func (s *Server) appSecrets(r *http.Request) (string, *secrets.Store, error) {
	app, err := s.requireApp(r)
	if err != nil {
		return "", nil, err
	}
	st, err := s.secretStore()
	return app, st, err
}

// SecretsList is the answer of GET and POST /v1/apps/{app}/secrets.
type SecretsList struct {
	Secrets         []secrets.Secret `json:"secrets"`
	Version         int              `json:"version"`
	DeployedVersion int              `json:"deployed_version"`
}

// secretsList lists an app's secrets. What is deployed is the secrets
// version of the app's newest complete release when it has one (deploys,
// restarts and rollbacks record it), else the version the last roll-out
// without a release marked.
func (s *Server) secretsList(ctx context.Context, st *secrets.Store, app string) (*SecretsList, error) {
	dv, err := st.DeployedVersion(ctx, app)
	if err != nil {
		return nil, err
	}
	rels, err := deploy.Releases(ctx, s.Store, app)
	if err != nil {
		return nil, err
	}
	for _, rel := range rels {
		if rel.Status == deploy.StatusComplete {
			dv = rel.SecretsVersion
			break
		}
	}
	ls, err := st.ListAt(ctx, app, dv)
	if err != nil {
		return nil, err
	}
	v, err := st.Version(ctx, app)
	if err != nil {
		return nil, err
	}
	return &SecretsList{Secrets: ls, Version: v, DeployedVersion: dv}, nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	if v := r.URL.Query().Get("show_secrets"); v == "true" || v == "1" {
		return badRequest("show_secrets: Hangar never returns secret values; they are decrypted only when a machine boots")
	}
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	return s.writeSecretsList(w, r, st, app)
}

// writeSecretsList answers with the app's secrets (names and digests).
func (s *Server) writeSecretsList(w http.ResponseWriter, r *http.Request, st *secrets.Store, app string) error {
	out, err := s.secretsList(r.Context(), st, app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) updateSecrets(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	var req secretsUpdate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Values) == 0 {
		return badRequest(`values is required: {"values": {"NAME": "value", "REMOVED": null}}`)
	}
	if _, err := st.Update(r.Context(), app, req.Values); err != nil {
		return err
	}
	return s.writeSecretsList(w, r, st, app)
}

func (s *Server) setSecret(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	var req secretValue
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Value == nil {
		return badRequest(`value is required: {"value": "..."}`)
	}
	name := r.PathValue("secret_name")
	if _, err := st.Update(r.Context(), app, map[string]*string{name: req.Value}); err != nil {
		return err
	}
	ls, err := st.List(r.Context(), app)
	if err != nil {
		return err
	}
	for _, sec := range ls {
		if sec.Name == name {
			writeJSON(w, http.StatusOK, sec)
			return nil
		}
	}
	return fmt.Errorf("secret %s vanished while being set: %w", name, errConflict)
}

func (s *Server) unsetSecret(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	v, err := st.Update(r.Context(), app, map[string]*string{r.PathValue("secret_name"): nil})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"version": v})
	return nil
}

// restarter is the deployer's restart (a redeploy of the current release
// with the current secrets), when it has one.
type restarter interface {
	Restart(ctx context.Context, app string, progress func(deploy.Event)) (*deploy.Release, error)
}

// deploySecrets rolls the latest secrets version out to the app's machines:
// through the deployer's Restart (the same health gating as a deploy, and a
// release recording the secrets version) when the app has a release, else
// machine by machine, each updated to the new version and waited for until
// healthy before the next.
func (s *Server) deploySecrets(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	v, err := st.Version(r.Context(), app)
	if err != nil {
		return err
	}
	rels, err := deploy.Releases(r.Context(), s.Store, app)
	if err != nil {
		return err
	}
	hasRelease := false
	for _, rel := range rels {
		hasRelease = hasRelease || rel.Status == deploy.StatusComplete
	}
	streamRelease(w, r, false, func(ctx context.Context, progress func(deploy.Event)) (*deploy.Release, error) {
		var rel *deploy.Release
		var err error
		if rs, ok := any(s.Deployer).(restarter); ok && hasRelease {
			rel, err = rs.Restart(ctx, app, progress)
		} else {
			err = s.restartMachinesWithSecrets(ctx, app, v, progress)
		}
		if err != nil {
			return rel, err
		}
		if err := st.MarkDeployed(ctx, app, v); err != nil {
			return rel, err
		}
		progress(deploy.Event{Time: time.Now().UTC(), Step: "secrets", Message: fmt.Sprintf("secrets version %d deployed", v)})
		return rel, nil
	})
	return nil
}

// restartMachinesWithSecrets updates each machine of the app to secrets
// version v, one at a time, waiting until each is healthy again.
func (s *Server) restartMachinesWithSecrets(ctx context.Context, app string, v int, progress func(deploy.Event)) error {
	ms, err := s.Sup.List(ctx, app)
	if err != nil {
		return err
	}
	emit := func(id, format string, args ...any) {
		progress(deploy.Event{Time: time.Now().UTC(), Step: "secrets", MachineID: id, Message: fmt.Sprintf(format, args...)})
	}
	for _, m := range ms {
		if m.Config == nil || m.State == types.StateDestroyed || m.State == types.StateDestroying {
			continue
		}
		running := m.State == types.StateStarted || m.State == types.StateStarting || m.State == types.StateSuspended
		cfg := *m.Config
		md := make(map[string]string, len(cfg.Metadata)+1)
		for k, val := range cfg.Metadata {
			md[k] = val
		}
		md[secrets.MetaVersion] = fmt.Sprint(v)
		cfg.Metadata = md
		if _, err := s.Sup.Update(ctx, app, m.ID, &cfg, false); err != nil {
			return fmt.Errorf("machine %s: %w", m.ID, err)
		}
		if !running {
			emit(m.ID, "machine %s (%s) will boot with secrets version %d", m.ID, m.State, v)
			continue
		}
		emit(m.ID, "machine %s restarted with secrets version %d; waiting for its checks", m.ID, v)
		if err := s.Sup.WaitHealthy(ctx, app, m.ID, 2*time.Minute); err != nil {
			return fmt.Errorf("machine %s after the secrets change: %w", m.ID, err)
		}
		emit(m.ID, "machine %s is healthy", m.ID)
	}
	return nil
}
