package proxy

import (
	"go/parser"
	gotoken "go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoListenerImport: the proxy reads the listener context from types and
// never imports tcpproxy (which calls into it as its Picker).
func TestNoListenerImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(gotoken.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/hangar-dev/hangar/internal/tcpproxy" || path == "github.com/hangar-dev/hangar/internal/supervisor" {
				t.Errorf("%s imports %s; the proxy takes its routing state through types", f, path)
			}
		}
	}
}
