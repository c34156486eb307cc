package importer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Status says how one source key carried over to fly.toml.
type Status string

// The three outcomes of kompose-style per-key support matrices.
const (
	// Mapped: the key has an exact fly.toml equivalent.
	Mapped Status = "mapped"
	// Approximated: converted, but the meaning differs; the entry's
	// message says how.
	Approximated Status = "approximated"
	// Unsupported: nothing in fly.toml does this; the key was dropped.
	Unsupported Status = "no-equivalent"
)

// Entry is one line of the migration report: one source key.
type Entry struct {
	App     string `json:"app,omitempty"`
	Key     string `json:"key"`
	Status  Status `json:"status"`
	Target  string `json:"target,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// Report is the migration report of one import.
type Report struct {
	Format  string   `json:"format"`
	Source  string   `json:"source"`
	Apps    []string `json:"apps"`
	Entries []Entry  `json:"entries"`
	// Actions are commands (or steps) to run after the import, in order.
	Actions []string `json:"next_steps,omitempty"`
	// Notes are global remarks that belong to no single key.
	Notes []string `json:"notes,omitempty"`
}

// Counts returns how many entries have each status.
func (r *Report) Counts() map[Status]int {
	m := map[Status]int{Mapped: 0, Approximated: 0, Unsupported: 0}
	for _, e := range r.Entries {
		m[e.Status]++
	}
	return m
}

// Warnings returns the entries that are not plainly mapped.
func (r *Report) Warnings() []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Status != Mapped {
			out = append(out, e)
		}
	}
	return out
}

// JSON renders the report as indented JSON.
func (r *Report) JSON() ([]byte, error) {
	type jsonReport struct {
		*Report
		Summary map[Status]int `json:"summary"`
	}
	b, err := json.MarshalIndent(jsonReport{Report: r, Summary: r.Counts()}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode migration report: %w", err)
	}
	return append(b, '\n'), nil
}

// Text renders the report for a person: per app, key by key.
func (r *Report) Text() string {
	var b strings.Builder
	c := r.Counts()
	fmt.Fprintf(&b, "Migration report: %s %s -> %d app(s): %s\n", r.Format, r.Source, len(r.Apps), strings.Join(r.Apps, ", "))
	fmt.Fprintf(&b, "%d mapped, %d approximated, %d with no equivalent\n", c[Mapped], c[Approximated], c[Unsupported])
	groups := map[string][]Entry{}
	var order []string
	for _, e := range r.Entries {
		if _, ok := groups[e.App]; !ok {
			order = append(order, e.App)
		}
		groups[e.App] = append(groups[e.App], e)
	}
	for _, app := range order {
		b.WriteString("\n")
		if app == "" {
			b.WriteString("Source-wide\n")
		} else {
			fmt.Fprintf(&b, "App %s\n", app)
		}
		for _, e := range groups[app] {
			label := map[Status]string{Mapped: "mapped", Approximated: "approx", Unsupported: "NO EQUIV"}[e.Status]
			line := fmt.Sprintf("  %-8s %s", label, e.Key)
			if e.Target != "" {
				line += " -> " + e.Target
			}
			b.WriteString(line + "\n")
			if e.Warning != "" {
				fmt.Fprintf(&b, "           warning: %s\n", e.Warning)
			}
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	if len(r.Actions) > 0 {
		b.WriteString("\nNext steps\n")
		for _, a := range r.Actions {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	return b.String()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func splitLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// uniqueSorted returns s sorted without repeats.
func uniqueSorted(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
