package importer

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/hangar-dev/hangar/internal/appconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// caseOptions is the optional options.json of a golden case.
type caseOptions struct {
	Name                string   `json:"name"`
	Region              string   `json:"region"`
	Profiles            []string `json:"profiles"`
	Environment         string   `json:"environment"`
	IncludeSecretValues bool     `json:"include_secret_values"`
}

// TestGolden converts every testdata/<format>/<case>/input and compares
// each app's fly.toml and the report with the golden files next to it.
// Run `go test ./internal/importer -run TestGolden -update` to rewrite them.
func TestGolden(t *testing.T) {
	formats, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range formats {
		if !f.IsDir() || f.Name() == "fuzz" {
			continue
		}
		cases, err := os.ReadDir(filepath.Join("testdata", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if !c.IsDir() {
				continue
			}
			format, dir := f.Name(), filepath.Join("testdata", f.Name(), c.Name())
			seen[format]++
			t.Run(format+"/"+c.Name(), func(t *testing.T) {
				t.Parallel()
				runGolden(t, format, dir)
			})
		}
	}
	for _, f := range Formats {
		if seen[f] == 0 {
			t.Errorf("no golden case for format %s", f)
		}
	}
}

func runGolden(t *testing.T, format, dir string) {
	if _, err := os.Stat(filepath.Join(dir, "SOURCE")); err != nil {
		t.Errorf("%s has no SOURCE file crediting the input", dir)
	}
	var co caseOptions
	if b, err := os.ReadFile(filepath.Join(dir, "options.json")); err == nil {
		if err := json.Unmarshal(b, &co); err != nil {
			t.Fatalf("options.json: %v", err)
		}
	}
	res, err := Import(format, filepath.Join(dir, "input"), Options{
		Name: co.Name, Region: co.Region, Profiles: co.Profiles, Environment: co.Environment,
		IncludeSecretValues: co.IncludeSecretValues,
	})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	want := map[string][]byte{}
	for _, a := range res.Apps {
		name := "fly.toml.golden"
		if len(res.Apps) > 1 {
			name = a.Name + ".fly.toml.golden"
		}
		data, err := a.Config.MarshalTOML("")
		if err != nil {
			t.Fatal(err)
		}
		checkFlyToml(t, a, data)
		want[name] = data
		if a.Dockerfile != nil {
			want[strings.TrimSuffix(name, "fly.toml.golden")+"Dockerfile.golden"] = a.Dockerfile
		}
	}
	var rep bytes.Buffer
	rep.WriteString(res.Report.Text())
	for _, a := range res.Apps {
		if len(a.Secrets) > 0 {
			rep.WriteString("\n--- " + secretsPath(a.Name) + " ---\n")
			rep.Write(a.SecretsFile())
		}
	}
	want["report.golden"] = rep.Bytes()
	checkReport(t, res)

	if *update {
		old, _ := filepath.Glob(filepath.Join(dir, "*.golden"))
		for _, o := range old {
			os.Remove(o)
		}
		for n, b := range want {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.golden"))
	for _, h := range have {
		if _, ok := want[filepath.Base(h)]; !ok {
			t.Errorf("stale golden file %s (rerun with -update)", h)
		}
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Errorf("missing golden file %s (rerun with -update): %v", n, err)
			continue
		}
		if !bytes.Equal(got, want[n]) {
			t.Errorf("%s/%s differs from the output (rerun with -update and review the diff):\n--- want\n%s\n--- got\n%s", dir, n, got, want[n])
		}
	}
}

// checkFlyToml parses a generated fly.toml back, with our own structs and
// with the platform's parser and validator.
func checkFlyToml(t *testing.T, a *App, data []byte) {
	t.Helper()
	var back FlyConfig
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Errorf("app %s: generated fly.toml does not parse back: %v\n%s", a.Name, err, data)
		return
	}
	if !reflect.DeepEqual(normalize(&back), normalize(a.Config)) {
		t.Errorf("app %s: fly.toml round trip changed the config", a.Name)
	}
	cfg, err := appconfig.Parse(data, "fly.toml")
	if err != nil {
		t.Errorf("app %s: appconfig.Parse: %v\n%s", a.Name, err, data)
		return
	}
	warnings, err := cfg.Validate(true)
	if err != nil {
		t.Errorf("app %s: appconfig Validate: %v\n%s", a.Name, err, data)
	}
	for _, w := range warnings {
		if w.Severity == appconfig.SeverityError {
			t.Errorf("app %s: appconfig error: %v", a.Name, w)
		}
	}
	if cfg.AppName != a.Name {
		t.Errorf("appconfig reads app %q, want %q", cfg.AppName, a.Name)
	}
}

// normalize makes nil and empty collections compare equal.
func normalize(c *FlyConfig) *FlyConfig {
	b, _ := json.Marshal(c)
	var out FlyConfig
	_ = json.Unmarshal(b, &out)
	return &out
}

// checkReport asserts the report's invariants: every entry that is not a
// plain mapping carries a warning, and every app is named.
func checkReport(t *testing.T, res *Result) {
	t.Helper()
	apps := map[string]bool{}
	for _, a := range res.Apps {
		apps[a.Name] = true
	}
	for _, e := range res.Report.Entries {
		if e.Status != Mapped && strings.TrimSpace(e.Warning) == "" {
			t.Errorf("entry %s (%s) has no warning", e.Key, e.Status)
		}
		if e.Key == "" {
			t.Errorf("entry without key: %+v", e)
		}
		if e.App != "" && !apps[e.App] {
			// entries of skipped units (static sites) name no generated app
			if !strings.Contains(e.Warning, "no app generated") {
				t.Errorf("entry %s names unknown app %s", e.Key, e.App)
			}
		}
	}
	if _, err := res.Report.JSON(); err != nil {
		t.Error(err)
	}
}
