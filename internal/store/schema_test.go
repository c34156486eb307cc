package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// writeV1File builds a file exactly as schema 1 laid it out: meta (schema,
// rev) and kv buckets, no history, no compacted revision.
func writeV1File(t *testing.T, path string, rev int64, kvs map[string]KV) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		meta.Put(keySchema, u64(1))
		meta.Put(keyRev, u64(uint64(rev)))
		kvb, err := tx.CreateBucket(bucketKV)
		if err != nil {
			return err
		}
		for k, kv := range kvs {
			if err := kvb.Put([]byte(k), encodeRecord(kv.CreateRevision, kv.ModRevision, kv.Value)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func fileSchema(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	db.View(func(tx *bolt.Tx) error { v, err = getU64(tx.Bucket(bucketMeta), keySchema); return err })
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrateV1toV2: the history bucket is added, nothing before the
// migration can be replayed, everything after can.
func TestMigrateV1toV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeV1File(t, path, 7, map[string]KV{
		"apps/a": {Value: []byte(`{"n":1}`), CreateRevision: 2, ModRevision: 5},
		"apps/b": {Value: []byte(`{"n":2}`), CreateRevision: 7, ModRevision: 7},
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("Check after migration: %v", err)
	}
	ctx := context.Background()
	if rev, _ := s.Revision(ctx); rev != 7 {
		t.Fatalf("revision = %d, want 7", rev)
	}
	kv, err := s.Get(ctx, "apps/a")
	if err != nil || string(kv.Value) != `{"n":1}` || kv.CreateRevision != 2 || kv.ModRevision != 5 {
		t.Fatalf("Get after migration = %+v, %v", kv, err)
	}
	if _, err := s.Watch(ctx, "", 6); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Watch before migration point: %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(ctx, "", 7)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Put(ctx, "apps/a", []byte(`{"n":3}`), 5)
	if err != nil || r != 8 {
		t.Fatalf("Put after migration = %d, %v", r, err)
	}
	if ev := <-ch; ev.Revision != 8 || ev.KV.CreateRevision != 2 {
		t.Fatalf("event after migration = %+v", ev)
	}
	s.Close()
	if v := fileSchema(t, path); v != 2 {
		t.Fatalf("schema after migration = %d, want 2", v)
	}
	// Reopening a migrated file is a no-op.
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Check(); err != nil {
		t.Fatal(err)
	}
	s2.Close()
}

func TestMigrationsAreContiguous(t *testing.T) {
	for i, m := range migrations {
		if m.From != i+1 {
			t.Fatalf("migration %d (%s) is from schema %d, want %d", i, m.Name, m.From, i+1)
		}
	}
	if len(migrations) != SchemaVersion-1 {
		t.Fatalf("%d migrations for schema %d", len(migrations), SchemaVersion)
	}
}

// TestMigrateFramework: migrations run in order, one transaction each; a
// failing migration leaves the file at the last completed version.
func TestMigrateFramework(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writeV1File(t, path, 0, nil)
	var ran []string
	step := func(name string, fail bool) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			ran = append(ran, name)
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
			if fail {
				return fmt.Errorf("%s failed", name)
			}
			return nil
		}
	}
	migs := []migration{
		{From: 1, Name: "one", Apply: step("one", false)},
		{From: 2, Name: "two", Apply: step("two", false)},
		{From: 3, Name: "three", Apply: step("three", true)},
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = migrate(db, migs, 4)
	if err == nil || !strings.Contains(err.Error(), "migrate schema 3 -> 4 (three)") {
		t.Fatalf("migrate = %v", err)
	}
	if strings.Join(ran, ",") != "one,two,three" {
		t.Fatalf("ran %v", ran)
	}
	db.View(func(tx *bolt.Tx) error {
		v, _ := readSchema(tx)
		if v != 3 {
			t.Errorf("schema after failed migration = %d, want 3", v)
		}
		if tx.Bucket([]byte("three")) != nil {
			t.Error("failed migration's changes were committed")
		}
		if tx.Bucket([]byte("two")) == nil {
			t.Error("completed migration's changes were lost")
		}
		return nil
	})
	if err := migrate(db, migs[:2], 4); err == nil || !strings.Contains(err.Error(), "no migration from schema 3") {
		t.Fatalf("migrate with a gap = %v", err)
	}
	db.Close()
}
