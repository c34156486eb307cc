package supervisor

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoProxyImport: the supervisor hands the proxy types.Backend through
// its own Router interface and never imports the proxy.
func TestNoProxyImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/hangar-dev/hangar/internal/proxy" || path == "github.com/hangar-dev/hangar/internal/tcpproxy" {
				t.Errorf("%s imports %s; speak types through the Router interface instead", f, path)
			}
		}
	}
}
