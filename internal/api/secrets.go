package api

// Secrets endpoints, with Fly's paths and shapes:
//
//	GET    /v1/apps/{app}/secrets/{secret_name}   one secret's name, digest and dates (never its value)
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

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/types"
)

type secretsUpdate struct {
	Values map[string]*string `json:"values"`
}

type secretValue struct {
	Value *string `json:"value"`
}

func (s *Server) secretStore() (*secrets.Store, error) {
	if s.secrets == nil {
		return nil, notConfigured("secrets")
	}
	return s.secrets, nil
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

// secretsList lists an app's secrets as the machines run them
// (deploy.DeployedSecretsVersion) and the latest version.
func (s *Server) secretsList(ctx context.Context, st *secrets.Store, app string) (*types.SecretsList, error) {
	dv, err := deploy.DeployedSecretsVersion(ctx, s.store, st, app)
	if err != nil {
		return nil, err
	}
	ls, err := st.ListAt(ctx, app, dv)
	if err != nil {
		return nil, err
	}
	v, err := st.Version(ctx, app)
	if err != nil {
		return nil, err
	}
	return &types.SecretsList{Secrets: ls, Version: v, DeployedVersion: dv}, nil
}

// refuseShowSecrets answers show_secrets=true with a 400: values are
// never returned.
func refuseShowSecrets(r *http.Request) error {
	if v := r.URL.Query().Get("show_secrets"); v == "true" || v == "1" {
		return badRequest("show_secrets: Hangar never returns secret values; they are decrypted only when a machine boots")
	}
	return nil
}

func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) error {
	if err := refuseShowSecrets(r); err != nil {
		return err
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

// secretKeys answers Fly's KMS-style secret key calls (fly-go's
// ListSecretKeys, GenerateSecretKey, EncryptSecretKey…): Hangar has none.
func (s *Server) secretKeys(w http.ResponseWriter, r *http.Request) error {
	return badRequest("secret keys (Fly's KMS-style /secretkeys: generate, encrypt, decrypt, sign, verify) are not supported by Hangar; keep key material in an app secret (`hangar secrets set`)")
}

// getSecret answers with one secret as listed (fly-go's GetAppSecrets):
// its name, digest, dates and status, never its value.
func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) error {
	if err := refuseShowSecrets(r); err != nil {
		return err
	}
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	ls, err := s.secretsList(r.Context(), st, app)
	if err != nil {
		return err
	}
	name := r.PathValue("secret_name")
	for _, sec := range ls.Secrets {
		if sec.Name == name {
			writeJSON(w, http.StatusOK, sec)
			return nil
		}
	}
	return fmt.Errorf("app %s has no secret %s; list them with `hangar secrets list -a %s`: %w", app, name, app, types.ErrNotFound)
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

// deploySecrets rolls the latest secrets version out to the app's
// machines and marks it deployed (deploy.Deployer.DeploySecrets).
func (s *Server) deploySecrets(w http.ResponseWriter, r *http.Request) error {
	app, st, err := s.appSecrets(r)
	if err != nil {
		return err
	}
	v, err := st.Version(r.Context(), app)
	if err != nil {
		return err
	}
	streamRelease(w, r, false, func(ctx context.Context, progress func(deploy.Event)) (*deploy.Release, error) {
		return s.deployer.DeploySecrets(ctx, app, v, userOf(r), progress)
	})
	return nil
}
