// Package importer converts other platforms' app descriptions into fly.toml
// files: docker compose, Heroku (Procfile + app.json), Render (render.yaml),
// Railway (railway.json / railway.toml), Amazon ECS task definitions and AWS
// Copilot manifests. Each import yields one fly.toml per app, a secrets file
// per app (names only unless asked) and a migration report that says, key by
// key, what was mapped, what was approximated and what has no equivalent.
//
// The package does no network I/O; it reads only the files it is given.
package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Formats lists the accepted --from values.
var Formats = []string{"compose", "heroku", "render", "railway", "ecs", "copilot"}

// Options steer an import.
type Options struct {
	// Name is the app name; with several apps it prefixes each one.
	Name string
	// Region is the primary_region; it overrides any region in the source.
	Region string
	// IncludeSecretValues copies secret values found in the source files
	// into the secrets files. Off by default: only names are written.
	IncludeSecretValues bool
	// Profiles are the compose profiles to enable ("*" for all).
	Profiles []string
	// Environment names an environment overlay (railway, copilot).
	Environment string
}

// App is one generated app.
type App struct {
	Name   string     `json:"name"`
	From   string     `json:"from"`
	Config *FlyConfig `json:"config"`
	// Secrets are the secret names (and values, when included) to import.
	Secrets []Secret `json:"secrets,omitempty"`
	// Dockerfile is a Dockerfile generated for an app that the source
	// platform built with buildpacks; written next to its fly.toml.
	Dockerfile []byte `json:"-"`
	// Context is the build context of an app built from source, relative
	// to the source directory ("" for the directory itself): its fly.toml
	// is written there, since `hangar deploy` builds in the config's
	// directory, and [build] dockerfile is relative to it.
	Context string `json:"-"`
}

// fromSource says whether the app is built from the source directory (a
// Dockerfile or builtin), rather than run from an image.
func (a *App) fromSource() bool {
	b := a.Config.Build
	return b != nil && b.Image == "" && (b.Dockerfile != "" || b.Builtin != "")
}

// Secret is one secret the app needs.
type Secret struct {
	Name  string `json:"name"`
	Value string `json:"-"`
}

// Result is the outcome of an import.
type Result struct {
	Apps   []*App  `json:"apps"`
	Report *Report `json:"report"`
}

// InputError is a problem with the input: it names the file and says what
// to do about it.
type InputError struct {
	File string
	Err  error
	Hint string
}

func (e *InputError) Error() string { return fmt.Sprintf("%s: %v", e.File, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(file, hint, format string, args ...any) error {
	return &InputError{File: file, Err: fmt.Errorf(format, args...), Hint: hint}
}

// Import converts the source at path (a file or a directory) in the given
// format.
func Import(format, path string, opts Options) (*Result, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &InputError{File: path, Err: err, Hint: "pass the path of the " + format + " file or of the directory that holds it"}
	}
	var res *Result
	switch f := strings.ToLower(format); f {
	case "docker-compose", "compose-spec":
		format = "compose"
	case "procfile", "app.json":
		format = "heroku"
	case "render.yaml":
		format = "render"
	case "railway.json", "railway.toml":
		format = "railway"
	case "aws-ecs", "ecs-task", "taskdef":
		format = "ecs"
	case "aws-copilot":
		format = "copilot"
	default:
		format = f
	}
	switch format {
	case "compose":
		res, err = importCompose(path, st.IsDir(), opts)
	case "heroku":
		res, err = importHeroku(path, st.IsDir(), opts)
	case "render":
		res, err = importRender(path, st.IsDir(), opts)
	case "railway":
		res, err = importRailway(path, st.IsDir(), opts)
	case "ecs":
		res, err = importECS(path, st.IsDir(), opts)
	case "copilot":
		res, err = importCopilot(path, st.IsDir(), opts)
	default:
		return nil, fmt.Errorf("unknown format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// findFile returns the first of names that exists in dir.
func findFile(dir string, names ...string) (string, bool) {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
	}
	return "", false
}

// readInput reads one input file, with an error that names it.
func readInput(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{File: path, Err: err, Hint: "check that the file exists and is readable"}
	}
	if len(b) > 16<<20 {
		return nil, inputErr(path, "pass the platform's config file, not a data file", "file is larger than 16 MiB")
	}
	return b, nil
}

// finish sorts what must be stable and fills the report's app list.
func (r *Result) finish() {
	r.Report.Apps = nil
	noRegion := false
	for _, a := range r.Apps {
		noRegion = noRegion || a.Config.PrimaryRegion == ""
		r.Report.Apps = append(r.Report.Apps, a.Name)
		sort.Slice(a.Secrets, func(i, j int) bool { return a.Secrets[i].Name < a.Secrets[j].Name })
	}
	if noRegion {
		r.Report.Notes = append(r.Report.Notes, "no primary_region: pass --region, or set primary_region in each fly.toml")
	}
	// Apps built from the same source sit side by side in the output
	// directory (see Files): generated Dockerfiles that differ get a name
	// each, and each app is deployed with its own config file.
	layout := r.layout()
	for i, a := range r.Report.Actions {
		for _, app := range r.Apps {
			if a == deployMarker(app.Name) {
				r.Report.Actions[i] = "hangar deploy -c " + filepath.ToSlash(layout[app])
			}
		}
	}
	var src []*App
	dockerfiles := map[string]bool{}
	for _, a := range r.Apps {
		if a.fromSource() {
			src = append(src, a)
			if a.Dockerfile != nil {
				dockerfiles[string(a.Dockerfile)] = true
			}
		}
	}
	if len(src) > 0 && len(r.Apps) > 1 || len(src) == 1 && src[0].Context != "" {
		r.Report.Notes = append(r.Report.Notes, "the configs of apps built from source are laid out as they must sit in the source tree (`hangar deploy` builds the directory its config is in): write them into the source's directory (--out, the default when launch runs there), or copy them there")
	}
	if len(src) > 1 {
		var cmds []string
		for _, a := range src {
			if a.Dockerfile != nil && len(dockerfiles) > 1 {
				a.Config.Build.Dockerfile = "Dockerfile." + a.Name
			}
			cmds = append(cmds, "hangar deploy -c "+filepath.ToSlash(layout[a]))
		}
		r.Report.Notes = append(r.Report.Notes, fmt.Sprintf("%d apps are built from source: each config is written in its build context, the directory `hangar deploy` builds; deploy each from the output directory (%s)", len(src), strings.Join(cmds, "; ")))
	}
}

// layout says where each app's config is written, relative to the output
// directory: fly.toml for a single app; for several, apps built from
// source in their build context (fly.toml, or fly.<app>.toml when several
// share the context), the others in <app>/fly.toml.
func (r *Result) layout() map[*App]string {
	out := map[*App]string{}
	if len(r.Apps) == 1 {
		a := r.Apps[0]
		out[a] = "fly.toml"
		if a.fromSource() && a.Context != "" {
			out[a] = filepath.Join(a.Context, "fly.toml")
		}
		return out
	}
	perContext := map[string]int{}
	for _, a := range r.Apps {
		if a.fromSource() {
			perContext[filepath.Clean(a.Context)]++
		}
	}
	for _, a := range r.Apps {
		switch ctx := filepath.Clean(a.Context); {
		case !a.fromSource():
			out[a] = filepath.Join(a.Name, "fly.toml")
		case perContext[ctx] == 1:
			out[a] = filepath.Join(ctx, "fly.toml")
		default:
			out[a] = filepath.Join(ctx, "fly."+a.Name+".toml")
		}
	}
	return out
}

// SecretsFile renders an app's secrets as a dotenv file for
// `hangar secrets import`.
func (a *App) SecretsFile() []byte {
	var b strings.Builder
	for _, s := range a.Secrets {
		v := s.Value
		if strings.ContainsAny(v, " \t\n\"'#$\\") {
			v = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "$", `\$`).Replace(v) + `"`
		}
		fmt.Fprintf(&b, "%s=%s\n", s.Name, v)
	}
	return []byte(b.String())
}

var appNameBad = regexp.MustCompile(`[^a-z0-9-]+`)

// appName makes a valid app name: lowercase letters, digits and dashes.
func appName(s string) string {
	s = appNameBad.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(regexp.MustCompile(`-+`).ReplaceAllString(s, "-"), "-")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-")
	}
	if s == "" {
		s = "app"
	}
	return s
}

var volNameBad = regexp.MustCompile(`[^a-z0-9_]+`)

// volumeName makes a valid volume name: lowercase letters, digits and
// underscores, at most 30 characters.
func volumeName(s string) string {
	s = volNameBad.ReplaceAllString(strings.ToLower(s), "_")
	s = strings.Trim(s, "_")
	if len(s) > 30 {
		s = strings.Trim(s[:30], "_")
	}
	if s == "" {
		s = "data"
	}
	return s
}

// nameApps picks app names: with one app, opts.Name or base; with several,
// opts.Name (or base) as a prefix unless the name already starts with it.
func nameFor(opts Options, base, unit string, several bool) string {
	if !several {
		if opts.Name != "" {
			return appName(opts.Name)
		}
		if unit != "" && base == "" {
			return appName(unit)
		}
		return appName(base)
	}
	prefix := opts.Name
	if prefix == "" {
		prefix = base
	}
	if prefix == "" || strings.HasPrefix(appName(unit), appName(prefix)+"-") || appName(unit) == appName(prefix) {
		return appName(unit)
	}
	return appName(prefix + "-" + unit)
}

// uniqueName returns name, or name-2, name-3, ... when used already has
// it (two services can sanitize to the same app name), and records it.
func uniqueName(used map[string]bool, name string) string {
	n := name
	for i := 2; used[n]; i++ {
		n = appName(fmt.Sprintf("%s-%d", name, i))
	}
	used[n] = true
	return n
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// shellJoin quotes args into one command line.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" {
			out[i] = "''"
		} else if strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]{}#~!") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
