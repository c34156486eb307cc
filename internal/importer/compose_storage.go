package importer

import (
	"encoding/base64"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	ctypes "github.com/compose-spec/compose-go/v2/types"
)

// A compose service's volumes, secrets and configs become [[mounts]] and
// [[files]].

func composeVolumes(b *builder, proj *ctypes.Project, dir, key string, s ctypes.ServiceConfig, u *composeUnit) {
	for i, v := range s.Volumes {
		kk := fmt.Sprintf("%s[%d]", key, i)
		switch v.Type {
		case ctypes.VolumeTypeBind:
			if u.db != "" && isDataPath(u.db, v.Target, s.Environment) {
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
			b.none(kk, "%s", bindAdvice(dir, v.Source, v.Target))
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
			if others := volumeUsers(proj, name, s.Name); len(others) > 0 {
				last := &b.rep.Entries[len(b.rep.Entries)-1]
				last.Status = Approximated
				last.Warning = strings.TrimPrefix(last.Warning+"; "+fmt.Sprintf("volume %s is shared with %s in the compose file, but a volume belongs to one machine: each app gets its own empty volume and the data is no longer shared. Fix: let one service own the data and have the other reach it over the network (its API), or keep shared files in object storage (S3, Tigris)", name, strings.Join(others, ", ")), "; ")
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

// volumeUsers lists the other services (than self) that mount the named
// volume name.
func volumeUsers(proj *ctypes.Project, name, self string) []string {
	var out []string
	for _, n := range sortedKeys(proj.Services) {
		if n == self {
			continue
		}
		for _, v := range proj.Services[n].Volumes {
			if v.Type == ctypes.VolumeTypeVolume && v.Source == name {
				out = append(out, "service "+n)
				break
			}
		}
	}
	return out
}

// dataPaths are where database images keep their data (the official
// images and the Bitnami ones).
var dataPaths = map[string][]string{
	"postgres": {"/var/lib/postgresql/data", "/var/lib/postgresql", "/bitnami/postgresql", "/home/postgres/pgdata"},
	"mysql":    {"/var/lib/mysql", "/bitnami/mysql"},
	"mariadb":  {"/var/lib/mysql", "/bitnami/mariadb"},
	"mongo":    {"/data/db", "/data/configdb", "/bitnami/mongodb"},
	"redis":    {"/data", "/bitnami/redis/data"},
	"valkey":   {"/data", "/bitnami/valkey/data"},
}

// isDataPath says whether target is (in) the data directory of a database
// of the given kind, counting a PGDATA the service sets.
func isDataPath(kind, target string, env ctypes.MappingWithEquals) bool {
	target = path.Clean(target)
	paths := dataPaths[kind]
	if v, ok := env["PGDATA"]; ok && v != nil && *v != "" {
		paths = append(paths, path.Clean(*v))
	}
	for _, p := range paths {
		// The data directory itself, a directory inside it, or its parent
		// when the data directory is one level down (PGDATA=/x/pgdata, mount /x).
		if target == p || strings.HasPrefix(target, p+"/") || path.Dir(p) == target && target != "/" {
			return true
		}
	}
	return false
}

// bindAdvice says what to do with a bind mount that is not a database's
// data: files shipped in the repository go into the image, host paths have
// no equivalent.
func bindAdvice(dir, source, target string) string {
	local := source
	if !filepath.IsAbs(local) {
		local = filepath.Join(dir, local)
	}
	st, err := os.Stat(local)
	inRepo := !filepath.IsAbs(source) || strings.HasPrefix(filepath.Clean(source), filepath.Clean(mustAbs(dir))+string(filepath.Separator))
	isFile := err == nil && !st.IsDir() || err != nil && path.Ext(target) != "" && path.Ext(source) != ""
	switch {
	case inRepo && isFile:
		return fmt.Sprintf("bind mount of the repository file %s at %s: a machine has no host files to mount; copy it into the image (COPY %s %s in the Dockerfile) or write it at boot with [[files]] (local_path = %q, guest_path = %q)", source, target, source, target, source, target)
	case inRepo && err == nil:
		return fmt.Sprintf("bind mount of the repository directory %s at %s: a machine has no host files to mount; copy it into the image (COPY %s %s in the Dockerfile)", source, target, source, target)
	case inRepo:
		return fmt.Sprintf("bind mount of the repository path %s at %s: a machine has no host files to mount; copy it into the image (COPY %s %s in the Dockerfile), or, if the app writes data there rather than reading shipped files, mount a volume at %s by hand", source, target, source, target, target)
	}
	return fmt.Sprintf("bind mount of the host path %s at %s has no equivalent: a machine sees only its image and its volume; copy what it needs into the image, or mount a volume at %s by hand if the app writes data there", source, target, target)
}
