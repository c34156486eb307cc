package importer

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	ctypes "github.com/compose-spec/compose-go/v2/types"
)

// seeds adds every golden input of a format, plus extra strings.
func seeds(f *testing.F, format string, match func(name string) bool, extra ...string) {
	filepath.Walk(filepath.Join("testdata", format), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.Contains(p, "/input/") && match(filepath.Base(p)) {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	for _, e := range extra {
		f.Add([]byte(e))
	}
}

// watchdog fails loudly, with every goroutine's stack, when one input
// takes longer than limit: a hang must be a crash the fuzzer records.
func watchdog(limit time.Duration) func() {
	tm := time.AfterFunc(limit, func() {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		panic("input took longer than " + limit.String() + ":\n" + string(buf[:n]))
	})
	return func() { tm.Stop() }
}

// render checks that whatever converted also renders.
func render(t *testing.T, res *Result) {
	t.Helper()
	if _, err := res.Files(); err != nil {
		t.Fatalf("converted input does not render: %v", err)
	}
}

func FuzzCompose(f *testing.F) {
	seeds(f, "compose", func(n string) bool { return strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml") },
		"services:\n  a:\n    image: x\n    ports: ['1-3:1-3/udp']\n    healthcheck:\n      test: curl -f http://localhost/\n",
		"x: &a [*a]\nservices: {}\n",
		"services:\n  w:\n    extends: {service: w}\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		res, err := convertCompose(dir, []ctypes.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: data}}, Options{Profiles: []string{"*"}})
		if err == nil {
			render(t, res)
		}
	})
}

func FuzzHeroku(f *testing.F) {
	seeds(f, "heroku", func(n string) bool { return n == "app.json" },
		`{"formation":{"web":{"quantity":-1,"size":"x"}},"addons":[1,{"plan":"heroku-redis"}],"env":{"A":{"value":[1]}}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		for _, in := range []herokuInput{
			{dir: ".", appJSON: data, appJSONName: "app.json"},
			{dir: ".", procfile: data, procfileName: "Procfile"},
			{dir: ".", herokuYML: data, herokuYMLName: "heroku.yml"},
		} {
			res, err := convertHeroku(in, Options{})
			if err == nil {
				render(t, res)
			}
		}
	})
}

func FuzzRender(f *testing.F) {
	seeds(f, "render", func(n string) bool { return n == "render.yaml" },
		"services:\n- type: web\n  name: a\n  envVars: [{fromGroup: g}]\nenvVarGroups: [{name: g, envVars: [{fromGroup: g}]}]\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		res, err := convertRender("render.yaml", data, Options{})
		if err == nil {
			render(t, res)
		}
	})
}

func FuzzRailway(f *testing.F) {
	seeds(f, "railway", func(n string) bool { return strings.HasPrefix(n, "railway.") })
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		for _, name := range []string{"railway.json", "railway.toml"} {
			res, err := convertRailway(name, data, "app", false, Options{Environment: "staging"})
			if err == nil {
				render(t, res)
			}
		}
	})
}

func FuzzECS(f *testing.F) {
	seeds(f, "ecs", func(n string) bool { return strings.HasSuffix(n, ".json") },
		`{"taskDefinition":{"containerDefinitions":[{"name":"a","image":"postgres","cpu":"1 vCPU","memory":"2 GB"}]}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		res, err := convertECS("task.json", data, "", nil, Options{})
		if err == nil {
			render(t, res)
		}
		res, err = convertECS("task.json", []byte(`{"family":"f","containerDefinitions":[{"name":"a","image":"i","portMappings":[{"containerPort":80}]}]}`), "service.json", data, Options{})
		if err == nil {
			render(t, res)
		}
	})
}

func FuzzCopilot(f *testing.F) {
	seeds(f, "copilot", func(n string) bool { return n == "manifest.yml" },
		"name: w\ntype: Load Balanced Web Service\nimage: {port: 80, build: {dockerfile: D, context: c}}\nhttp: {healthcheck: {path: /h, interval: 5s}}\ncount: {range: {min: 1, max: 3}, spot: 2}\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		res, err := convertCopilot(map[string][]byte{"copilot/svc/manifest.yml": data}, Options{Environment: "test"})
		if err == nil {
			render(t, res)
		}
	})
}

func FuzzExecCheck(f *testing.F) {
	for _, s := range []string{
		"curl -f http://localhost:8080/health || exit 1",
		"wget -qO- http://127.0.0.1:${PORT:-3000}/ | grep ok",
		"sh -c 'curl --fail localhost/'",
		"python -c \"urlopen('http://localhost:1/x')\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		defer watchdog(10 * time.Second)()
		p, _, err := parseExecCheck([]string{"CMD-SHELL", s}, map[string]string{"PORT": "1"})
		if err == nil && (p.Port < 1 || p.Port > 65535 || !strings.HasPrefix(p.Path, "/")) {
			t.Fatalf("%q: bad probe %+v", s, p)
		}
		parseExecCheck(strings.Fields(s), nil)
	})
}

func FuzzProcfile(f *testing.F) {
	f.Add([]byte("web: a\nworker: b\n#c\n\nbad\nweb: again\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		procs, _ := parseProcfile(data)
		seen := map[string]bool{}
		for _, p := range procs {
			if seen[p.name] || p.cmd == "" {
				t.Fatalf("duplicate or empty process %+v", p)
			}
			seen[p.name] = true
		}
	})
}
