package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

// Loading compose files: the reference loader (compose-go), offline and
// guarded against hostile includes, with v1 files and placeholders handled.

// logrusMu serializes loads so that silencing compose-go's logrus output
// does not race.
var logrusMu sync.Mutex

// guardLoader refuses extends/include targets that are not regular files
// (a /dev/zero would never end) or are too large.
type guardLoader struct{ dir string }

func (g guardLoader) Accept(p string) bool {
	if !filepath.IsAbs(p) {
		p = filepath.Join(g.dir, p)
	}
	st, err := os.Stat(p)
	return err == nil && (!st.Mode().IsRegular() || st.Size() > 16<<20)
}

func (g guardLoader) Load(context.Context, string) (string, error) {
	return "", errors.New("not a regular file of at most 16 MiB")
}

func (g guardLoader) Dir(p string) string { return filepath.Dir(p) }

// loadCompose runs the reference loader offline: interpolation from the
// project's .env only (never the caller's environment, so results are
// reproducible), anchors, extends, include and profiles resolved.
//
// It returns the project, notes for the report, and the variables that
// were used but not set.
func loadCompose(dir string, files []ctypes.ConfigFile, opts Options) (*ctypes.Project, []string, map[string]bool, error) {
	env := map[string]string{}
	if p, ok := findFile(dir, ".env"); ok {
		if e, err := dotenv.GetEnvFromFile(map[string]string{}, []string{p}); err == nil {
			env = e
		}
	}
	var missing []string
	seen := map[string]bool{}
	placeholders := map[string]string{}
	required := false
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		if !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
		if v, ok := placeholders[k]; ok {
			return v, true
		}
		if required {
			return "", true
		}
		return "", false
	}
	name := loader.NormalizeProjectName(filepath.Base(mustAbs(dir)))
	if name == "" {
		name = "app"
	}
	profiles := opts.Profiles
	load := func() (*ctypes.Project, error) {
		details := ctypes.ConfigDetails{WorkingDir: dir, ConfigFiles: files, Environment: env}
		return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
			o.SetProjectName(name, false)
			o.Interpolate.LookupValue = lookup
			o.ResolvePaths = false
			o.SkipResolveEnvironment = true
			o.SkipConsistencyCheck = true
			o.Profiles = profiles
			o.ResourceLoaders = append([]loader.ResourceLoader{guardLoader{dir}}, o.ResourceLoaders...)
		})
	}
	logrusMu.Lock()
	defer logrusMu.Unlock()
	lvl := logrus.GetLevel()
	logrus.SetLevel(logrus.PanicLevel)
	defer logrus.SetLevel(lvl)
	p, err := load()
	if err != nil && len(missing) > 0 {
		// A file taken without its .env: unset variables can leave specs
		// such as "${DATA_DIR}:/data" broken. Retry as compose would with
		// the variables set: ${X:?msg} gets an empty value, and a variable
		// used as a volume source a placeholder path.
		required = true
		for _, v := range missing {
			if volumeSourceUse(files, v) {
				placeholders[v] = "./" + v
			}
		}
		if p2, err2 := load(); err2 == nil {
			p, err = p2, nil
		} else {
			// Still broken: the variables also stand for typed values
			// (durations, counts, ports). Guess by name and say so.
			keys := variableKeys(files)
			for _, v := range missing {
				if _, ok := placeholders[v]; !ok && !hasDefault(files, v) {
					if g := typedPlaceholder(v, keys[v]); g != "" {
						placeholders[v] = g
					}
				}
			}
			if p3, err3 := load(); err3 == nil {
				p, err = p3, nil
			}
		}
	}
	if err != nil {
		if wrapped, ok := composeV1(files); ok {
			// The version 1 format: services at the top level.
			files = wrapped
			if p2, err2 := load(); err2 == nil {
				p, err = p2, nil
				missing = append(missing, "(version 1 file format: services were read from the top level)")
			}
		}
	}
	if err != nil {
		return nil, nil, nil, &InputError{File: files[0].Filename, Err: err, Hint: "fix the compose file so that `docker compose config` accepts it (put the variables it needs in a .env file next to it)"}
	}
	sort.Strings(missing) // the loader visits maps in random order
	unset := map[string]bool{}
	for _, v := range missing {
		if !strings.HasPrefix(v, "(") {
			unset[v] = true
		}
	}
	envFile := filepath.Join(dir, ".env")
	for i, v := range missing {
		if ph, ok := placeholders[v]; ok {
			missing[i] = fmt.Sprintf("variable %s is not set in %s: the placeholder %q was used so that the file loads; check the values that use it", v, envFile, ph)
		} else if strings.HasPrefix(v, "(") {
			missing[i] = strings.Trim(v, "()")
		} else {
			missing[i] = fmt.Sprintf("variable %s is not set in %s; its default or an empty value was used", v, envFile)
		}
	}
	return p, missing, unset, nil
}

// hasDefault says whether a file gives the variable a default (${X:-d}).
func hasDefault(files []ctypes.ConfigFile, name string) bool {
	re := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `:?-`)
	for _, f := range files {
		if re.Match(f.Content) {
			return true
		}
	}
	return false
}

// keyTypes are the compose keys whose values are typed (not strings): an
// unset variable there needs a placeholder of the right type for the file
// to load. Most are dropped or approximated by the import anyway.
var keyTypes = map[string]string{
	"read_only": "false", "privileged": "false", "tty": "false", "stdin_open": "false", "init": "false",
	"oom_kill_disable": "false", "disable": "false", "external": "false", "attachable": "false",
	"internal": "false", "enable_ipv6": "false", "required": "false", "attach": "false",
	"retries": "1", "replicas": "1", "scale": "1", "cpu_count": "1", "cpu_shares": "1024", "pids_limit": "1",
	"oom_score_adj": "0", "mem_swappiness": "0", "cpu_percent": "0", "cpus": "1",
	"interval": "30s", "timeout": "30s", "start_period": "30s", "start_interval": "5s", "stop_grace_period": "10s",
	"mem_limit": "512m", "memswap_limit": "512m", "mem_reservation": "512m", "shm_size": "64m", "memory": "512m",
}

// variableKeys maps each variable the files use to the YAML key whose
// value holds it (the last one seen when several do).
func variableKeys(files []ctypes.ConfigFile) map[string]string {
	out := map[string]string{}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				walk(k, vv)
			}
		case []any:
			for _, vv := range x {
				walk(key, vv)
			}
		case string:
			for _, m := range varRefRE.FindAllStringSubmatch(x, -1) {
				out[m[1]+m[3]] = key
			}
		}
	}
	for _, f := range files {
		var top any
		if yaml.Unmarshal(f.Content, &top) == nil {
			walk("", top)
		}
	}
	return out
}

// varRefRE is a compose variable reference: ${NAME...} or $NAME.
var varRefRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// typedPlaceholder guesses a value of the right type for an unset variable
// from the key that uses it, else from its name, for files that only load
// with their .env.
func typedPlaceholder(name, key string) string {
	if v, ok := keyTypes[key]; ok {
		return v
	}
	n := strings.ToUpper(name)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(n, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("INTERVAL", "TIMEOUT", "PERIOD", "DELAY", "WINDOW", "GRACE", "DURATION"):
		return "30s"
	case has("PORT", "BIND"):
		return "8080"
	case has("RETRIES", "REPLICAS", "SCALE", "COUNT", "NUM", "WORKERS", "SIZE", "LIMIT", "MAX", "MIN", "CPUS"):
		return "1"
	case has("MEM"):
		return "512m"
	}
	return ""
}

// composeV1 rewrites files in the version 1 format (every top-level key a
// service with an image or a build) under a services key.
func composeV1(files []ctypes.ConfigFile) ([]ctypes.ConfigFile, bool) {
	out := make([]ctypes.ConfigFile, len(files))
	for i, f := range files {
		var top map[string]any
		if err := yaml.Unmarshal(f.Content, &top); err != nil || len(top) == 0 {
			return nil, false
		}
		if _, ok := top["services"]; ok {
			return nil, false
		}
		for _, v := range top {
			svc, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if _, img := svc["image"]; !img {
				if _, build := svc["build"]; !build {
					return nil, false
				}
			}
		}
		data, err := yaml.Marshal(map[string]any{"services": top})
		if err != nil {
			return nil, false
		}
		out[i] = ctypes.ConfigFile{Filename: f.Filename, Content: data}
	}
	return out, true
}

// volumeSourceUse says whether ${name} appears right before ":/" in a
// compose file, as the source of a volume.
func volumeSourceUse(files []ctypes.ConfigFile, name string) bool {
	re := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `(:?[-?+][^}]*)?\}:[/~.]`)
	for _, f := range files {
		if re.Match(f.Content) {
			return true
		}
	}
	return false
}
