package appconfig

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bytes to the parser in each format and runs
// everything downstream on what parses: no input may panic or hang.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.toml")
	real, _ := filepath.Glob("testdata/real/*")
	for _, s := range append(seeds, real...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b, uint8(0))
		}
	}
	f.Add([]byte(`{"app":"a","services":[{"ports":[{"port":"80"}]}]}`), uint8(1))
	f.Add([]byte("app: a\nvm:\n  size: shared-cpu-1x\nmounts: {source: d, destination: /d}\n"), uint8(2))
	f.Add([]byte("a: &a [*a, *a]\n"), uint8(2))
	f.Add([]byte("[[services]]\nconcurrency = \"1,\"\n[[services.ports]]\nport=1\n"), uint8(0))
	f.Add([]byte("x = [[[[[[[[[[1]]]]]]]]]]\n[a.b.c.d]\n[[a.b.e]]\n"), uint8(0))
	names := []string{"fly.toml", "fly.json", "fly.yaml"}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		name := names[int(format)%len(names)]
		start := time.Now()
		cfg, err := Parse(data, name)
		if err != nil {
			if e, ok := err.(*Error); ok {
				for _, d := range e.Diagnostics {
					if d.Line < 1 || d.Col < 1 {
						t.Fatalf("error without a position: %v", d)
					}
					if d.Hint == "" {
						t.Fatalf("error without a hint: %v", d)
					}
				}
			}
			return
		}
		ws, verr := cfg.Validate(true)
		for _, d := range ws {
			if d.Line < 1 {
				t.Fatalf("warning without a line: %v", d)
			}
		}
		if e, ok := verr.(*Error); ok {
			for _, d := range e.Diagnostics {
				if d.Line < 1 {
					t.Fatalf("error without a line: %v", d)
				}
			}
		}
		_ = cfg.Lint()
		for _, g := range cfg.ProcessGroups() {
			_, _ = cfg.ToMachineConfig(g, "img")
		}
		_, _ = cfg.ToReleaseMachineConfig("img")
		_, _ = cfg.MarshalTOML()
		_, _ = cfg.MarshalYAMLConfig()
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s", d)
		}
	})
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
