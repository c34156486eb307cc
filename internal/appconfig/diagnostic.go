package appconfig

import (
	"fmt"
	"sort"
	"strings"
)

// Severities of a Diagnostic.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Diagnostic is one problem found in a config file, pointing at the key
// (or value) where it is.
type Diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Key      string `json:"key,omitempty"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
	Severity string `json:"severity"`
	// Rule names the check that produced it (e.g. "unknown-key"); stable,
	// for tests and for filtering.
	Rule string `json:"rule,omitempty"`
}

// String formats the diagnostic as "fly.toml:12:3: message (hint: ...)".
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", d.Line, d.Col)
	}
	b.WriteString(": ")
	switch d.Severity {
	case SeverityWarning:
		b.WriteString("warning: ")
	case SeverityNote:
		b.WriteString("note: ")
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", d.Hint)
	}
	return b.String()
}

// Error is returned by Parse and Validate: every error found, each with its
// position.
type Error struct {
	Diagnostics []Diagnostic
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Hint returns the hint of the first diagnostic, so callers that show one
// suggestion have something to show.
func (e *Error) Hint() string {
	for _, d := range e.Diagnostics {
		if d.Hint != "" {
			return d.Hint
		}
	}
	return ""
}

// sortDiagnostics orders diagnostics by position, then message, so output
// is stable whatever order the checks ran in.
func sortDiagnostics(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Message < b.Message
	})
}
