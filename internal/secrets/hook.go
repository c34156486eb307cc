package secrets

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hangar-dev/hangar/internal/dotenv"
	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// Hook injects secrets and [[files]] into machines as they boot. Decrypted
// values exist only in memory, in the task's OCI config (0600, under the
// 0700 data dir) and, for [[files]], in a tmpfs; never in the state store.
type Hook struct {
	Secrets *Store
	Store   store.Store // to find destroyed machines whose files can go
	// RunDir holds [[files]] contents, one directory per machine; see
	// RunDirFor.
	RunDir string
}

// RunDirFor returns where a daemon with dataDir keeps [[files]] contents:
// under /dev/shm (a tmpfs: secret files never touch the disk, and vanish
// at reboot) when it is one, else under the data dir. The hook creates it
// (mode 0700) when a machine first has files. It is the supervisor's
// FilesDirFor: the supervisor removes a machine's files as soon as no task
// of it runs (stop, exit, update, destroy).
func RunDirFor(dataDir string) string { return supervisor.FilesDirFor(dataDir) }

// SpecHook is a supervisor.SpecHook: secrets become env (overriding [env]
// and the image's env) and [[files]] are written and bind-mounted.
func (h *Hook) SpecHook(ctx context.Context, r *supervisor.Record, spec *runtime.Spec) error {
	if r.Config == nil {
		return nil
	}
	v, err := VersionFromMetadata(r.Config.Metadata)
	if err != nil {
		return fmt.Errorf("machine %s: %w", r.ID, err)
	}
	values, err := h.Secrets.Values(ctx, r.App, v)
	if err != nil {
		return fmt.Errorf("machine %s: secrets: %w", r.ID, err)
	}
	env, err := machineEnv(r.Config, values)
	if err != nil {
		return fmt.Errorf("machine %s: %w", r.ID, err)
	}
	if len(env) > 0 {
		spec.Env = mergeEnv(spec.Env, env)
	}
	return h.writeFiles(ctx, r, spec, values)
}

// machineEnv is the secrets a machine gets as env: the app's secrets,
// unless a process sets ignore_app_secrets, plus each process's secrets
// (env_var from the secret name, or from the secret env_var names).
func machineEnv(cfg *types.MachineConfig, values map[string]string) (map[string]string, error) {
	env := map[string]string{}
	if !slices.ContainsFunc(cfg.Processes, func(p types.MachineProcess) bool { return p.IgnoreAppSecrets }) {
		maps.Copy(env, values)
	}
	for i, p := range cfg.Processes {
		for _, sec := range p.Secrets {
			name := sec.Name
			if name == "" {
				name = sec.EnvVar
			}
			v, ok := values[name]
			if !ok {
				return nil, fmt.Errorf("config.processes[%d].secrets: %s wants secret %s, which the app does not have; set it with `hangar secrets set %s=...`: %w",
					i, sec.EnvVar, name, name, ErrNotFound)
			}
			env[sec.EnvVar] = v
		}
	}
	return env, nil
}

// mergeEnv returns env with values set, replacing earlier entries.
func mergeEnv(env []string, values map[string]string) []string {
	out := make([]string, 0, len(env)+len(values))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := values[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range values {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// ValidGuestPath checks a [[files]] guest_path.
func ValidGuestPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0) {
		return fmt.Errorf("files: guest_path %q: want an absolute, clean path to a file: %w", p, ErrInvalid)
	}
	for _, bad := range []string{"/proc", "/sys", "/dev"} {
		if p == bad || strings.HasPrefix(p, bad+"/") {
			return fmt.Errorf("files: guest_path %q: %s is the kernel's: %w", p, bad, ErrInvalid)
		}
	}
	return nil
}

// ValidateFiles is a supervisor.Validator: a machine's [[files]] must each
// have a valid guest_path and exactly one source, with raw_value in base64,
// before the machine is recorded. (The secret a file names is looked up at
// start: it may be set in between.)
func ValidateFiles(_ context.Context, _ string, cfg *types.MachineConfig) error {
	for i, f := range cfg.Files {
		if err := ValidGuestPath(f.GuestPath); err != nil {
			return fmt.Errorf("config.files[%d]: %w", i, err)
		}
		switch {
		case f.SecretName != nil && f.RawValue != nil:
			return fmt.Errorf("config.files[%d] (%s): set raw_value or secret_name, not both: %w", i, f.GuestPath, ErrInvalid)
		case f.SecretName != nil:
			if err := dotenv.ValidName(*f.SecretName); err != nil {
				return fmt.Errorf("config.files[%d] (%s): secret_name %w: %w", i, f.GuestPath, err, ErrInvalid)
			}
		case f.RawValue != nil:
			if _, err := base64.StdEncoding.DecodeString(*f.RawValue); err != nil {
				return fmt.Errorf("config.files[%d] (%s): raw_value is not base64: %w", i, f.GuestPath, ErrInvalid)
			}
		default:
			return fmt.Errorf("config.files[%d] (%s): set raw_value or secret_name: %w", i, f.GuestPath, ErrInvalid)
		}
	}
	return nil
}

func (h *Hook) writeFiles(ctx context.Context, r *supervisor.Record, spec *runtime.Spec, values map[string]string) error {
	h.sweep(ctx)
	dir := filepath.Join(h.RunDir, r.ID)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("machine %s: files: %w", r.ID, err)
	}
	if len(r.Config.Files) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("machine %s: files: %w", r.ID, err)
	}
	if err := os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o700); err != nil {
		return fmt.Errorf("machine %s: files: %w", r.ID, err)
	}
	// The machine's user must reach its files; others on the host must not.
	if err := os.Chown(dir, int(spec.UID), int(spec.GID)); err != nil {
		return fmt.Errorf("machine %s: files: %w", r.ID, err)
	}
	for i, f := range r.Config.Files {
		if err := ValidGuestPath(f.GuestPath); err != nil {
			return fmt.Errorf("machine %s: %w", r.ID, err)
		}
		var content []byte
		mode := os.FileMode(0o644)
		switch {
		case f.SecretName != nil:
			val, ok := values[*f.SecretName]
			if !ok {
				return fmt.Errorf("machine %s: files: guest_path %s wants secret %s, which the app does not have; set it with `hangar secrets set %s=...`: %w",
					r.ID, f.GuestPath, *f.SecretName, *f.SecretName, ErrNotFound)
			}
			// Fly stores file contents in secrets base64-encoded; a value
			// that is not base64 is written as it is.
			if b, err := base64.StdEncoding.DecodeString(val); err == nil {
				content = b
			} else {
				content = []byte(val)
			}
			mode = 0o600
		case f.RawValue != nil:
			b, err := base64.StdEncoding.DecodeString(*f.RawValue)
			if err != nil {
				return fmt.Errorf("machine %s: files: guest_path %s: raw_value is not base64: %w", r.ID, f.GuestPath, ErrInvalid)
			}
			content = b
		default:
			return fmt.Errorf("machine %s: files: guest_path %s has neither raw_value nor secret_name: %w", r.ID, f.GuestPath, ErrInvalid)
		}
		if f.Mode != 0 {
			mode = os.FileMode(f.Mode) & os.ModePerm
		}
		host := filepath.Join(dir, fmt.Sprintf("%d", i))
		if err := os.WriteFile(host, content, mode); err != nil {
			return fmt.Errorf("machine %s: files: %w", r.ID, err)
		}
		if err := os.Chmod(host, mode); err != nil {
			return err
		}
		if err := os.Chown(host, int(spec.UID), int(spec.GID)); err != nil {
			return fmt.Errorf("machine %s: files: %w", r.ID, err)
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: host, Destination: f.GuestPath, ReadOnly: true})
	}
	return nil
}

// sweep removes the files of machines that no longer exist. The
// supervisor removes a machine's files when it stops or is destroyed; this
// catches what a daemon that died in between left behind.
func (h *Hook) sweep(ctx context.Context) {
	ents, err := os.ReadDir(h.RunDir)
	if err != nil || len(ents) == 0 {
		return
	}
	kvs, err := h.Store.List(ctx, "machines/")
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, kv := range kvs {
		live[path.Base(kv.Key)] = true
	}
	for _, e := range ents {
		if e.IsDir() && !live[e.Name()] {
			if err := os.RemoveAll(filepath.Join(h.RunDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				h.Secrets.log.Warn("remove files of a destroyed machine", "machine", e.Name(), "err", err)
			}
		}
	}
}
