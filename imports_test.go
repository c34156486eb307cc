// Package hangar_test holds checks on the module as a whole; the code is
// under cmd/ and internal/.
package hangar_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/hangar-dev/hangar/"

// A rule says which internal packages one package may import. Packages are
// named by their path under the module ("internal/api", "cmd/hangar").
type rule struct {
	why string
	// applies reports whether the rule governs the importing package.
	applies func(pkg string) bool
	// forbids reports whether importing dep breaks the rule.
	forbids func(pkg, dep string) bool
}

func is(names ...string) func(string) bool {
	return func(p string) bool {
		for _, n := range names {
			if p == n || strings.HasPrefix(p, n+"/") {
				return true
			}
		}
		return false
	}
}

func anyOf(names ...string) func(pkg, dep string) bool {
	in := is(names...)
	return func(_, dep string) bool { return in(dep) }
}

// serverSide are the packages that only the daemon runs; the CLI reaches
// them over HTTP, through the wire types in internal/types.
var serverSide = []string{
	"internal/api", "internal/apps", "internal/auth", "internal/certs", "internal/cluster", "internal/deploy",
	"internal/dns", "internal/flycast", "internal/hosts", "internal/machinefs", "internal/flyreplay", "internal/h2backend", "internal/logs", "internal/network",
	"internal/proxy", "internal/proxyproto", "internal/runtime", "internal/secrets",
	"internal/statics", "internal/store", "internal/supervisor", "internal/tcpproxy",
	"internal/volume", "internal/metrics",
}

// leaves import nothing of the module but their own subpackages.
var leaves = []string{"internal/types", "internal/store", "internal/fsutil"}

// rules are the import rules of docs/ARCHITECTURE.md ("Import rules").
var rules = []rule{
	{
		why:     "leaves import nothing of the module",
		applies: is(leaves...),
		forbids: func(pkg, dep string) bool {
			for _, l := range leaves {
				if is(l)(pkg) && is(l)(dep) {
					return false // within the leaf (store/storetest uses store)
				}
			}
			return true
		},
	},
	{
		why:     "only the daemon serves the API",
		applies: func(p string) bool { return !is("internal/daemon", "internal/api")(p) },
		forbids: anyOf("internal/api"),
	},
	{
		why:     "the supervisor hands the proxy types.Backend through an interface it owns",
		applies: is("internal/supervisor"),
		forbids: anyOf("internal/proxy", "internal/tcpproxy"),
	},
	{
		why:     "the proxy is told about machines; it does not drive them",
		applies: is("internal/proxy"),
		forbids: anyOf("internal/supervisor", "internal/deploy", "internal/api", "internal/runtime", "internal/store", "internal/tcpproxy"),
	},
	{
		why:     "the metrics exporter reads snapshots and lists it is handed; it drives nothing",
		applies: is("internal/metrics"),
		forbids: anyOf("internal/supervisor", "internal/deploy", "internal/api", "internal/runtime", "internal/volume", "internal/network"),
	},
	{
		why:     "components report to metrics through hooks they own (only the daemon wires metrics in)",
		applies: func(p string) bool { return !is("internal/daemon", "internal/metrics")(p) },
		forbids: anyOf("internal/metrics"),
	},
	{
		why:     "the CLI talks to the daemon over HTTP (it starts one only for `hangar server`)",
		applies: is("internal/cli"),
		forbids: anyOf(serverSide...),
	},
	{
		why:     "only the daemon wires the world together",
		applies: func(p string) bool { return !is("internal/daemon", "internal/cli")(p) },
		forbids: anyOf("internal/daemon"),
	},
	{
		why:     "the dashboard gets everything through the /v1 API, so it is authorized as the API is: it imports only types",
		applies: is("internal/dashboard"),
		forbids: func(_, dep string) bool { return !is("internal/types")(dep) },
	},
	{
		why: "a shim starts from the runtime package's init, after everything it imports is initialised: " +
			"it imports only small leaves (each shim's start-up is on a machine start's path)",
		applies: func(p string) bool { return p == "internal/runtime" },
		forbids: func(_, dep string) bool {
			return !is("internal/types", "internal/fsutil", "internal/logs/logfile")(dep)
		},
	},
	{
		why:     "domain packages do not reach up into the daemon's HTTP or CLI layers",
		applies: func(p string) bool { return !is("cmd")(p) },
		forbids: anyOf("internal/cli"),
	},
}

// violations lists every broken rule of an import graph (non-test code).
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, deps := range graph {
		for _, dep := range deps {
			if dep == pkg {
				continue
			}
			for _, r := range rules {
				if r.applies(pkg) && r.forbids(pkg, dep) {
					out = append(out, pkg+" imports "+dep+": "+r.why)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// importGraph reads the non-test Go files under cmd/ and internal/ and
// returns, per package directory, the module packages it imports.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	seen := map[string]map[string]bool{}
	fset := token.NewFileSet()
	for _, root := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			pkg := filepath.ToSlash(filepath.Dir(path))
			if seen[pkg] == nil {
				seen[pkg] = map[string]bool{}
				graph[pkg] = nil
			}
			for _, imp := range f.Imports {
				dep, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), module)
				if ok && !seen[pkg][dep] {
					seen[pkg][dep] = true
					graph[pkg] = append(graph[pkg], dep)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("read %s: %v", root, err)
		}
	}
	return graph
}

func TestImportRules(t *testing.T) {
	if _, err := os.Stat("internal/types"); err != nil {
		t.Fatalf("run from the module root: %v", err)
	}
	graph := importGraph(t)
	if len(graph) < 20 {
		t.Fatalf("read only %d packages; the walk is broken", len(graph))
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestImportRulesCatchViolations shows that each rule fires: a graph with
// one forbidden edge per rule yields exactly those violations.
func TestImportRulesCatchViolations(t *testing.T) {
	bad := map[string][]string{
		"internal/types":      {"internal/store"},
		"internal/deploy":     {"internal/api"},
		"internal/supervisor": {"internal/proxy"},
		"internal/proxy":      {"internal/supervisor"},
		"internal/cli":        {"internal/deploy", "internal/types", "internal/daemon"},
		"internal/volume":     {"internal/daemon"},
		"internal/importer":   {"internal/cli"},
		"internal/daemon":     {"internal/api", "internal/proxy"},
		"internal/dashboard":  {"internal/types", "internal/supervisor"},
		"internal/runtime":    {"internal/logs/logfile", "internal/logs"},
	}
	got := violations(bad)
	want := []string{
		"internal/cli imports internal/deploy",
		"internal/dashboard imports internal/supervisor",
		"internal/deploy imports internal/api",
		"internal/importer imports internal/cli",
		"internal/proxy imports internal/supervisor",
		"internal/runtime imports internal/logs",
		"internal/supervisor imports internal/proxy",
		"internal/types imports internal/store",
		"internal/volume imports internal/daemon",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]+":") {
			t.Errorf("violation %d = %q, want %q", i, got[i], want[i])
		}
	}
}
