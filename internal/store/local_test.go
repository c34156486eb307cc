package store_test

import (
	"path/filepath"
	"testing"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/storetest"
)

func openLocal(t testing.TB, opts store.Options) *store.Local {
	t.Helper()
	s, err := store.OpenOptions(filepath.Join(t.TempDir(), "state.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openLocal(t, store.Options{}) })
}
