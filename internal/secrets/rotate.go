package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hangar-dev/hangar/internal/store"
)

// RotateKey replaces the data dir's secrets key with a new one and
// re-encrypts every stored secret (every version of every app) under it.
// Run it while no daemon uses the data dir. It is crash-safe: the new key
// is written to NextKeyFile first, all ciphertexts are rewritten in one
// transaction, and only then does NextKeyFile replace KeyFile; a rerun after
// a crash finishes the job. It returns how many values were re-encrypted.
func RotateKey(ctx context.Context, st store.Store, dataDir string) (int, error) {
	kr, err := loadKeyring(dataDir)
	if err != nil {
		return 0, err
	}
	nextPath := filepath.Join(dataDir, NextKeyFile)
	next, err := loadKeyFile(nextPath)
	if errors.Is(err, os.ErrNotExist) {
		next, err = generateKeyFile(nextPath)
	}
	if err != nil {
		return 0, err
	}
	kr.byID[next.id] = next
	kvs, err := st.List(ctx, "secrets/")
	if err != nil {
		return 0, fmt.Errorf("rotate secrets key: %w", err)
	}
	var ops []store.Op
	n := 0
	for _, kv := range kvs {
		rest := strings.TrimPrefix(kv.Key, "secrets/")
		app, tail, ok := strings.Cut(rest, "/v/")
		if !ok || strings.Contains(app, "/") || tail == "" {
			continue
		}
		var rec versionRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return 0, fmt.Errorf("rotate secrets key: %s: %w", kv.Key, err)
		}
		for name, e := range rec.Entries {
			plain, err := kr.open(e.Sealed, aad(app, name))
			if err != nil {
				return 0, fmt.Errorf("rotate secrets key: secret %s of app %s (version %d): %w", name, app, rec.Version, err)
			}
			if e.Sealed, err = next.seal(plain, aad(app, name)); err != nil {
				return 0, err
			}
			e.Digest = next.digest(plain)
			n++
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return 0, err
		}
		ops = append(ops, store.Op{Key: kv.Key, Value: b, Expect: kv.ModRevision})
	}
	if len(ops) > 0 {
		if _, err := st.Txn(ctx, ops); err != nil {
			return 0, fmt.Errorf("rotate secrets key: save: %w", err)
		}
	}
	if err := os.Rename(nextPath, filepath.Join(dataDir, KeyFile)); err != nil {
		return 0, fmt.Errorf("rotate secrets key: install the new key: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return n, nil
}
