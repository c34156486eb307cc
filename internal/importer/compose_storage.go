package importer

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ctypes "github.com/compose-spec/compose-go/v2/types"
)

// A compose service's volumes, secrets and configs become [[mounts]] and
// [[files]].

func composeVolumes(b *builder, proj *ctypes.Project, key string, s ctypes.ServiceConfig, u *composeUnit) {
	for i, v := range s.Volumes {
		kk := fmt.Sprintf("%s[%d]", key, i)
		switch v.Type {
		case ctypes.VolumeTypeBind:
			if u.db != "" && !strings.Contains(filepath.Base(v.Target), ".") {
				// A database's data directory on the host: keep the data on a volume.
				b.volume(kk, s.Name+"_data", v.Target, 0, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = fmt.Sprintf("the database's data directory was the host path %s; it is now a volume: copy the data over (e.g. pg_dump/restore)", v.Source)
				}
				continue
			}
			if strings.Contains(v.Source, "docker.sock") || strings.Contains(v.Target, "docker.sock") {
				b.none(kk, "the Docker socket (%s) is not available to machines", v.Source)
				continue
			}
			b.none(kk, "bind mount %s:%s has no equivalent: COPY the files into the image, use [[files]] for a config file, or a volume for data", v.Source, v.Target)
		case ctypes.VolumeTypeVolume:
			name := v.Source
			size := 0
			if name == "" {
				name = s.Name + "_" + strings.ReplaceAll(strings.Trim(v.Target, "/"), "/", "_")
				b.volume(kk, name, v.Target, size, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "anonymous volume became a named volume"
				}
				continue
			}
			if pv, ok := proj.Volumes[name]; ok && bool(pv.External) {
				b.volume(kk, name, v.Target, size, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "external volume: a new, empty volume is created; copy its data over"
				}
				continue
			}
			b.volume(kk, name, v.Target, size, u.procs())
			if v.ReadOnly {
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "read_only is not kept: the volume is mounted read-write"
				}
			}
		case ctypes.VolumeTypeTmpfs:
			b.approx(kk, "", "tmpfs %s not mounted: the root filesystem is already ephemeral", v.Target)
		default:
			b.none(kk, "volume type %s has no equivalent", v.Type)
		}
	}
}

// composeSecretFiles maps service secrets/configs to secrets and [[files]].
func composeSecretFiles(b *builder, proj *ctypes.Project, dir, key string, refs []ctypes.ServiceSecretConfig, base string, secret bool) {
	for _, r := range refs {
		kk := key + "." + r.Source
		target := r.Target
		if target == "" {
			target = r.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = base + target
		}
		var def ctypes.FileObjectConfig
		if secret {
			def = ctypes.FileObjectConfig(proj.Secrets[r.Source])
		} else {
			def = ctypes.FileObjectConfig(proj.Configs[r.Source])
		}
		if !secret && def.File != "" {
			b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, LocalPath: def.File})
			b.mapped(kk, "[[files]] local_path")
			continue
		}
		if !secret && def.Content != "" {
			b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, RawValue: base64.StdEncoding.EncodeToString([]byte(def.Content))})
			b.mapped(kk, "[[files]] raw_value")
			continue
		}
		name := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(r.Source))
		if secret {
			name = "SECRET_" + name
		} else {
			name = "CONFIG_" + name
		}
		value := ""
		if def.File != "" {
			p := def.File
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() < 1<<20 {
				if data, err := os.ReadFile(p); err == nil {
					value = base64.StdEncoding.EncodeToString(data)
				}
			}
		}
		b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, SecretName: name})
		why := fmt.Sprintf("written to %s at boot from secret %s (base64 of the file)", target, name)
		if def.Environment != "" {
			why = fmt.Sprintf("came from variable %s; written to %s at boot from secret %s (base64)", def.Environment, target, name)
		}
		b.secret(kk, name, value, why)
	}
}
