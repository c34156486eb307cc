package e2e

import (
	"os"
	"testing"
)

// TestMain runs the tests, then removes what tests share across the run
// (the Postgres image archive, pgImageArchive).
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Getenv("HANGAR_E2E_PG_IMAGE") == "" {
		os.Remove(pgImageArchive)
	}
	os.Exit(code)
}
