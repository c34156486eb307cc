package appconfig

import (
	"errors"
	"strings"
	"testing"
)

// collect parses src as fly.toml and returns every diagnostic that Parse,
// Validate (strict or not) and Lint produce.
func collect(t *testing.T, src string, strict bool) []Diagnostic {
	t.Helper()
	cfg, err := Parse([]byte(src), "fly.toml")
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Parse: %v", err)
		}
		return e.Diagnostics
	}
	warnings, err := cfg.Validate(strict)
	out := append([]Diagnostic{}, warnings...)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Validate: %v", err)
		}
		out = append(out, e.Diagnostics...)
	}
	return append(out, cfg.Lint()...)
}

type ruleCase struct {
	name     string
	src      string
	strict   bool
	rule     string
	severity string
	line     int
	message  string
}

func runRuleCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := strings.TrimLeft(tc.src, "\n")
			ds := collect(t, src, tc.strict)
			for _, d := range ds {
				if d.Line < 1 || d.Col < 1 {
					t.Errorf("diagnostic without a position: %v", d)
				}
				if d.Rule == tc.rule && d.Message == tc.message {
					if d.Line != tc.line {
						t.Errorf("line = %d, want %d: %v", d.Line, tc.line, d)
					}
					if d.Severity != tc.severity {
						t.Errorf("severity = %s, want %s: %v", d.Severity, tc.severity, d)
					}
					if d.Hint == "" {
						t.Errorf("no hint: %v", d)
					}
					return
				}
			}
			var got []string
			for _, d := range ds {
				got = append(got, d.Rule+" "+d.String())
			}
			t.Errorf("no %s diagnostic %q; got:\n%s", tc.rule, tc.message, strings.Join(got, "\n"))
		})
	}
}
