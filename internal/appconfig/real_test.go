package appconfig

import (
	"path/filepath"
	"testing"
)

// TestRealFiles loads fly.toml files collected from public repositories
// (each credits its source in its first line). Fly accepts every one of
// them, so Hangar must parse, validate and convert each without an error.
func TestRealFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/real/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d real files in testdata/real", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			warnings, err := cfg.Validate(false)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range warnings {
				if w.Line < 1 {
					t.Errorf("warning without a line: %v", w)
				}
			}
			for _, d := range cfg.Lint() {
				if d.Line < 1 {
					t.Errorf("lint finding without a line: %v", d)
				}
			}
			for _, g := range cfg.ProcessGroups() {
				mc, err := cfg.ToMachineConfig(g, "registry.example/app:1")
				if err != nil {
					t.Fatalf("ToMachineConfig(%s): %v", g, err)
				}
				if mc.Metadata["fly_process_group"] != g || mc.Env["FLY_PROCESS_GROUP"] != g {
					t.Errorf("group %s: metadata %v env %v", g, mc.Metadata, mc.Env)
				}
				if mc.Guest == nil {
					t.Errorf("group %s: no guest", g)
				}
			}
			if testing.Verbose() {
				for _, w := range warnings {
					t.Log(w)
				}
				for _, d := range cfg.Lint() {
					t.Log("lint:", d)
				}
			}
		})
	}
}

// TestRejectedRealFiles holds real files that flyctl itself refuses; Hangar
// must refuse them too, with a line number.
func TestRejectedRealFiles(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/rejected/*")
	if len(files) == 0 {
		t.Fatal("no files in testdata/rejected")
	}
	for _, f := range files {
		cfg, err := Load(f)
		if err == nil {
			_, err = cfg.Validate(false)
		}
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("%s: want an *Error, got %v", f, err)
			continue
		}
		for _, d := range e.Diagnostics {
			if d.Line < 1 {
				t.Errorf("%s: error without a line: %v", f, d)
			}
		}
	}
}
