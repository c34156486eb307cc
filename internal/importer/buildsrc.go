package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Building from source without buildpacks. Heroku, Render and Railway
// build an app from its source with buildpacks (or Nixpacks); a Cloud
// Native Buildpacks builder needs a registry and a daemon that Hangar does
// not have, so an import that stopped at `builder = "heroku/builder:24"`
// could not deploy. Instead the importer detects the language from the
// files a buildpack looks at and writes a [build] that `hangar deploy`
// runs: builtin = "go" for Go, a generated Dockerfile for the others (as
// `fly launch` does).

// srcLang is a language detected in a source directory.
type srcLang struct {
	Name     string // go, node, ruby, python, elixir, or "" when unknown
	Evidence string // what gave it away: "go.mod", "the heroku/nodejs buildpack", ...
	// WithNode says that the app also needs Node.js at build time (a
	// Rails app with a package.json or the Node.js buildpack beside Ruby's).
	WithNode bool
}

// langMarkers are the files buildpacks detect, in the order they decide:
// a Rails app with a package.json is Ruby, a Django app with one Python.
var langMarkers = []struct{ lang, file string }{
	{"ruby", "Gemfile"},
	{"elixir", "mix.exs"},
	{"python", "requirements.txt"},
	{"python", "pyproject.toml"},
	{"python", "Pipfile"},
	{"python", "setup.py"},
	{"go", "go.mod"},
	{"node", "package.json"},
}

// detectLang finds the app's language: from the source files when they are
// there, else from the buildpacks named, else from the commands run.
func detectLang(dir string, buildpacks, commands []string) srcLang {
	if dir != "" {
		for _, m := range langMarkers {
			if _, ok := findFile(dir, m.file); ok {
				return srcLang{Name: m.lang, Evidence: m.file, WithNode: m.lang == "ruby" && has(dir, "package.json")}
			}
		}
	}
	// With several buildpacks the last language buildpack decides, as on
	// Heroku; a Node.js one before it still runs (assets).
	node := false
	for _, bp := range buildpacks {
		l := strings.ToLower(bp)
		node = node || strings.HasSuffix(l, "/nodejs") || strings.Contains(l, "heroku-buildpack-nodejs")
	}
	for i := len(buildpacks) - 1; i >= 0; i-- {
		bp := buildpacks[i]
		l := strings.ToLower(bp)
		for _, x := range []struct{ word, lang string }{{"nodejs", "node"}, {"node", "node"}, {"ruby", "ruby"}, {"python", "python"}, {"go", "go"}, {"elixir", "elixir"}, {"phoenix", "elixir"}} {
			if strings.HasSuffix(l, "/"+x.word) || strings.Contains(l, "heroku-buildpack-"+x.word) || strings.HasSuffix(l, "-"+x.word) {
				return srcLang{Name: x.lang, Evidence: "the buildpack " + bp, WithNode: node && x.lang != "node"}
			}
		}
	}
	for _, c := range commands {
		words, err := shellWords(c)
		if err != nil {
			continue
		}
		for len(words) > 0 && assignmentRE.MatchString(words[0]) {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		switch path.Base(words[0]) {
		case "bundle", "rails", "rake", "puma", "unicorn", "ruby", "sidekiq":
			return srcLang{Name: "ruby", Evidence: "the command " + words[0]}
		case "node", "npm", "yarn", "pnpm", "npx":
			return srcLang{Name: "node", Evidence: "the command " + words[0]}
		case "python", "python3", "gunicorn", "uvicorn", "celery", "daphne", "hypercorn", "waitress-serve", "flask":
			return srcLang{Name: "python", Evidence: "the command " + words[0]}
		case "mix", "elixir":
			return srcLang{Name: "elixir", Evidence: "the command " + words[0]}
		}
	}
	return srcLang{}
}

// sourceBuild is what replaces a buildpack build.
type sourceBuild struct {
	Build      *FlyBuild
	Dockerfile []byte // generated Dockerfile, nil for builtin = "go"
	// Commands maps a process command to what it becomes (builtin go runs
	// the binary as the image's entrypoint: "bin/server -x" becomes "-x").
	Commands map[string]string
	Why      string // for the report
}

// buildFromSource picks the [build] for an app built from source in dir.
// platform names the source platform; buildCmd is its build command, if it
// has one (Render's buildCommand, Railway's); port is the port the app
// listens on ($PORT). commands are the process commands (as they will be
// written to fly.toml).
func buildFromSource(dir, platform string, lang srcLang, buildCmd string, port int, commands []string) (*sourceBuild, error) {
	if lang.Name == "go" && buildCmd == "" {
		if cmds, ok := goBuiltinCommands(dir, commands, port); ok {
			return &sourceBuild{
				Build:    &FlyBuild{Builtin: "go"},
				Commands: cmds,
				Why: fmt.Sprintf("%s built this Go app (found by %s) with a buildpack; Hangar builds it with builtin = \"go\": the main package at the root compiled with the host's Go toolchain into a static image whose entrypoint is the binary, so process commands keep only their arguments",
					platform, lang.Evidence),
			}, nil
		}
	}
	var df []byte
	switch lang.Name {
	case "go":
		df = goDockerfile(dir, buildCmd)
	case "node":
		df = nodeDockerfile(dir, buildCmd)
	case "ruby":
		df = rubyDockerfile(dir, buildCmd, lang.WithNode)
	case "python":
		df = pythonDockerfile(dir, buildCmd)
	case "elixir":
		df = elixirDockerfile(dir, buildCmd)
	default:
		return nil, nil
	}
	header := fmt.Sprintf("# Dockerfile generated by `hangar launch --from %s`: %s built this %s app (found by %s)\n# with a buildpack, which Hangar cannot run. Review it before deploying.\n", strings.ToLower(platform), platform, lang.Name, lang.Evidence)
	why := fmt.Sprintf("%s built this %s app (found by %s) with a buildpack, which Hangar cannot run (a Cloud Native Buildpacks builder needs a registry): a Dockerfile was generated that installs the dependencies", platform, lang.Name, lang.Evidence)
	if buildCmd != "" {
		why += fmt.Sprintf(" and runs the build command %q", buildCmd)
	} else {
		why += " and runs the build steps the buildpack would"
	}
	return &sourceBuild{Build: &FlyBuild{Dockerfile: "Dockerfile"}, Dockerfile: append([]byte(header), df...), Why: why + "; review it before deploying"}, nil
}

// goModule reads the module path of dir's go.mod ("" without one).
func goModule(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return ""
	}
	return parseGoModule(b)
}

var goModuleRE = regexp.MustCompile(`(?m)^\s*module\s+"?([^\s"]+)"?`)

// parseGoModule returns the module path a go.mod declares.
func parseGoModule(b []byte) string {
	if m := goModuleRE.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// goBuiltinCommands rewrites process commands for a builtin = "go" image,
// whose entrypoint is the app's binary and which has no shell: the
// command's program must be that binary (bin/NAME, ./NAME or NAME, NAME
// the module's last element or the directory's name; the Go buildpack
// installs it as bin/NAME), and its arguments may only expand $PORT. ok is
// false when a command cannot run that way.
func goBuiltinCommands(dir string, commands []string, port int) (map[string]string, bool) {
	names := map[string]bool{}
	if m := goModule(dir); m != "" {
		names[path.Base(m)] = true
	}
	if dir != "" {
		names[filepath.Base(mustAbs(dir))] = true
	}
	out := map[string]string{}
	for _, c := range commands {
		inner := c
		if strings.HasPrefix(c, "sh -c ") {
			w, err := shellWords(c)
			if err != nil || len(w) != 3 {
				return nil, false
			}
			inner = w[2]
		}
		inner = strings.NewReplacer("${PORT}", fmt.Sprint(port), "$PORT", fmt.Sprint(port)).Replace(inner)
		if shellSyntax(inner) != "" {
			return nil, false
		}
		words, err := shellWords(inner)
		if err != nil || len(words) == 0 {
			return nil, false
		}
		prog := strings.TrimPrefix(words[0], "./")
		prog = strings.TrimPrefix(prog, "bin/")
		if strings.Contains(prog, "/") || !names[prog] && len(names) > 0 {
			return nil, false
		}
		out[c] = shellJoin(words[1:])
	}
	return out, true
}

func goDockerfile(dir, buildCmd string) []byte {
	var b strings.Builder
	ver := "1.23"
	if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
		if m := regexp.MustCompile(`(?m)^go\s+(\d+\.\d+)`).FindSubmatch(data); m != nil {
			ver = string(m[1])
		}
	}
	fmt.Fprintf(&b, "FROM golang:%s AS build\nWORKDIR /src\n", ver)
	if _, ok := findFile(dir, "go.sum"); ok {
		b.WriteString("COPY go.mod go.sum ./\nRUN go mod download\n")
	} else {
		b.WriteString("COPY go.mod ./\n")
	}
	b.WriteString("COPY . .\n")
	if buildCmd != "" {
		fmt.Fprintf(&b, "RUN %s\n", buildCmd)
	}
	b.WriteString("# Like the Go buildpack: every main package, installed as bin/NAME.\nRUN CGO_ENABLED=0 go build -trimpath -o /app/bin/ ./...\n\n")
	b.WriteString("FROM debian:bookworm-slim\nRUN apt-get update -qq && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*\nWORKDIR /app\nCOPY --from=build /app/bin /app/bin\nENV PATH=/app/bin:$PATH\n")
	return []byte(b.String())
}

// nodeMajor reads the major Node version of package.json's engines.node.
func nodeMajor(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "22"
	}
	var pj struct {
		Engines struct {
			Node string `json:"node"`
		} `json:"engines"`
	}
	if json.Unmarshal(data, &pj) != nil {
		return "22"
	}
	if m := regexp.MustCompile(`(\d+)`).FindString(pj.Engines.Node); m != "" && len(m) <= 2 && m >= "14" {
		return m
	}
	return "22"
}

// nodeInstall is the install command for the lockfile found in dir.
func nodeInstall(dir string) (copyLine, install string) {
	switch {
	case has(dir, "pnpm-lock.yaml"):
		return "COPY package.json pnpm-lock.yaml ./", "corepack enable && pnpm install --frozen-lockfile"
	case has(dir, "yarn.lock"):
		return "COPY package.json yarn.lock ./", "corepack enable && yarn install --frozen-lockfile"
	case has(dir, "package-lock.json"):
		return "COPY package.json package-lock.json ./", "npm ci"
	}
	return "COPY package.json ./", "npm install"
}

func has(dir, name string) bool {
	if dir == "" {
		return false
	}
	_, ok := findFile(dir, name)
	return ok
}

func nodeDockerfile(dir, buildCmd string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM node:%s-slim\nWORKDIR /app\n", nodeMajor(dir))
	if buildCmd != "" {
		fmt.Fprintf(&b, "COPY . .\nRUN %s\n", buildCmd)
	} else {
		cp, install := nodeInstall(dir)
		// Like the Node.js buildpack: dev dependencies for the build
		// script, pruned afterwards.
		fmt.Fprintf(&b, "%s\nRUN %s\nCOPY . .\nRUN npm run build --if-present && npm prune --omit=dev\n", cp, install)
	}
	b.WriteString("ENV NODE_ENV=production\n")
	return []byte(b.String())
}

// rubyVersion reads .ruby-version or the Gemfile's ruby line (major.minor).
func rubyVersion(dir string) string {
	re := regexp.MustCompile(`(\d+\.\d+)`)
	if data, err := os.ReadFile(filepath.Join(dir, ".ruby-version")); err == nil {
		if m := re.Find(data); m != nil {
			return string(m)
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "Gemfile")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "ruby ") || strings.HasPrefix(l, "ruby(") {
				if m := re.FindString(l); m != "" {
					return m
				}
			}
		}
	}
	return "3.3"
}

func rubyDockerfile(dir, buildCmd string, withNode bool) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM ruby:%s-slim\nWORKDIR /app\n", rubyVersion(dir))
	pkgs := "build-essential git libpq-dev libyaml-dev pkg-config curl"
	if withNode || has(dir, "package.json") {
		pkgs += " nodejs npm"
	}
	fmt.Fprintf(&b, "RUN apt-get update -qq && apt-get install -y --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n", pkgs)
	b.WriteString("ENV RAILS_ENV=production RACK_ENV=production BUNDLE_WITHOUT=development:test RAILS_LOG_TO_STDOUT=1 RAILS_SERVE_STATIC_FILES=1\n")
	if buildCmd != "" {
		fmt.Fprintf(&b, "COPY . .\nRUN %s\n", buildCmd)
		return []byte(b.String())
	}
	if has(dir, "Gemfile.lock") {
		b.WriteString("COPY Gemfile Gemfile.lock ./\n")
	} else {
		b.WriteString("COPY Gemfile Gemfile.lock* ./\n")
	}
	b.WriteString("RUN bundle install\nCOPY . .\n")
	b.WriteString("# Like the Ruby buildpack: precompile assets when the app has the task.\nRUN if bundle exec rake -P 2>/dev/null | grep -q '^rake assets:precompile'; then SECRET_KEY_BASE_DUMMY=1 bundle exec rake assets:precompile; fi\n")
	return []byte(b.String())
}

// pythonVersion reads .python-version or runtime.txt (major.minor).
func pythonVersion(dir string) string {
	re := regexp.MustCompile(`(3\.\d+)`)
	for _, f := range []string{".python-version", "runtime.txt"} {
		if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			if m := re.Find(data); m != nil {
				return string(m)
			}
		}
	}
	return "3.12"
}

func pythonDockerfile(dir, buildCmd string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM python:%s-slim\nENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1\nWORKDIR /app\n", pythonVersion(dir))
	if buildCmd != "" {
		fmt.Fprintf(&b, "COPY . .\nRUN %s\n", buildCmd)
		return []byte(b.String())
	}
	switch {
	case has(dir, "requirements.txt"):
		b.WriteString("COPY requirements.txt ./\nRUN pip install -r requirements.txt\nCOPY . .\n")
	case has(dir, "Pipfile"):
		b.WriteString("RUN pip install pipenv\nCOPY Pipfile* ./\nRUN pipenv install --system --deploy\nCOPY . .\n")
	case has(dir, "poetry.lock"):
		b.WriteString("RUN pip install poetry && poetry config virtualenvs.create false\nCOPY pyproject.toml poetry.lock ./\nRUN poetry install --no-root --only main\nCOPY . .\n")
	default:
		b.WriteString("COPY . .\nRUN pip install .\n")
	}
	if has(dir, "manage.py") {
		b.WriteString("# Like the Python buildpack: collect Django's static files.\nRUN python manage.py collectstatic --noinput\n")
	}
	return []byte(b.String())
}

func elixirDockerfile(dir, buildCmd string) []byte {
	var b strings.Builder
	b.WriteString("FROM elixir:1.17\nENV MIX_ENV=prod\nWORKDIR /app\nRUN mix local.hex --force && mix local.rebar --force\n")
	if buildCmd != "" {
		fmt.Fprintf(&b, "COPY . .\nRUN %s\n", buildCmd)
		return []byte(b.String())
	}
	if has(dir, "mix.lock") {
		b.WriteString("COPY mix.exs mix.lock ./\n")
	} else {
		b.WriteString("COPY mix.exs ./\n")
	}
	b.WriteString("RUN mix deps.get --only prod && mix deps.compile\nCOPY . .\n")
	b.WriteString("# Like the Elixir buildpacks: compile, and build Phoenix assets when the app has the task.\nRUN mix compile && if mix help assets.deploy >/dev/null 2>&1; then mix assets.deploy; fi\n")
	return []byte(b.String())
}
