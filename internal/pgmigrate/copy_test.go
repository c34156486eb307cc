package pgmigrate

import (
	"slices"
	"strings"
	"testing"
)

func TestToolOutputSplitsProgressFromErrors(t *testing.T) {
	var progress []string
	o := &toolOutput{progress: func(l string) { progress = append(progress, l) }}
	input := "pg_restore: connecting to database for restore\n" +
		"pg_restore: processing data for table \"public.items\"\r\n" +
		"pg_restore: creating SCHEMA \"Billing\"\n" +
		"pg_restore: error: could not execute query: ERROR:  permission denied for database x\n" +
		"Command was: CREATE SCHEMA \"Billing\";\n\n" +
		"pg_restore: warning: errors ignored on restore: 1"
	// Arbitrary chunk boundaries, as a pipe delivers them.
	for i := 0; i < len(input); i += 7 {
		end := min(i+7, len(input))
		if _, err := o.Write([]byte(input[i:end])); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{`pg_restore: processing data for table "public.items"`}; !slices.Equal(progress, want) {
		t.Errorf("progress = %q, want %q", progress, want)
	}
	got := o.String()
	want := "pg_restore: error: could not execute query: ERROR:  permission denied for database x\n" +
		"Command was: CREATE SCHEMA \"Billing\";\n" +
		"pg_restore: warning: errors ignored on restore: 1"
	if got != want {
		t.Errorf("kept output:\n%s\nwant:\n%s", got, want)
	}
	for range 2 * maxKeptLines {
		_, _ = o.Write([]byte("ERROR: again\n"))
	}
	if n := strings.Count(o.String(), "\n") + 1; n != maxKeptLines {
		t.Errorf("kept %d lines, want at most %d", n, maxKeptLines)
	}
}
