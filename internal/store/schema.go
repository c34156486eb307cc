package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// File layout (schema 2):
//
//	meta     "schema"  -> uint64 schema version
//	         "rev"     -> uint64 current revision
//	         "compact" -> uint64 compacted revision: history holds every event
//	                      with revision > compact (added in schema 2)
//	kv       key       -> record: createRev u64 | modRev u64 | value
//	history  rev u64 | idx u32 -> event: type u8 | createRev u64 | modRev u64 |
//	                      keylen u32 | key | value  (added in schema 2)
//
// All integers are big-endian.

// SchemaVersion is the schema version this build writes.
const SchemaVersion = 2

var (
	bucketMeta    = []byte("meta")
	bucketKV      = []byte("kv")
	bucketHistory = []byte("history")

	keySchema  = []byte("schema")
	keyRev     = []byte("rev")
	keyCompact = []byte("compact")
)

// migration upgrades a file from schema From to From+1. It runs inside one
// bbolt write transaction together with the schema bump, so a crash leaves
// the file either fully at From or fully at From+1.
type migration struct {
	From  int
	Name  string
	Apply func(tx *bolt.Tx) error
}

// migrations must be ordered by From, contiguous, and end at SchemaVersion-1.
// Never edit a released migration; append a new one and bump SchemaVersion.
var migrations = []migration{
	{From: 1, Name: "add watch history", Apply: migrateV1toV2},
}

// migrateV1toV2 adds the history bucket used for watch replay. Schema 1 kept
// no history, so the compacted revision starts at the current revision:
// watches can replay only revisions written after the migration.
func migrateV1toV2(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketHistory); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	rev, err := getU64(meta, keyRev)
	if err != nil {
		return err
	}
	return meta.Put(keyCompact, u64(rev))
}

// initSchema lays out an empty file at the current schema.
func initSchema(tx *bolt.Tx) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketKV); err != nil {
		return err
	}
	if _, err := tx.CreateBucket(bucketHistory); err != nil {
		return err
	}
	for _, kv := range [][2][]byte{
		{keySchema, u64(SchemaVersion)},
		{keyRev, u64(0)},
		{keyCompact, u64(0)},
	} {
		if err := meta.Put(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// readSchema returns the file's schema version, or 0 for an empty file.
func readSchema(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if empty {
			return 0, nil
		}
		return 0, errors.New("not a hangar state file (no meta bucket)")
	}
	v, err := getU64(meta, keySchema)
	if err != nil {
		return 0, err
	}
	if v == 0 || v > 1<<20 {
		return 0, fmt.Errorf("invalid schema version %d", v)
	}
	return int(v), nil
}

// migrate brings the file to SchemaVersion, one migration per transaction.
// It refuses files written by a newer hangar without touching them.
func migrate(db *bolt.DB, migs []migration, target int) error {
	var cur int
	if err := db.View(func(tx *bolt.Tx) (err error) { cur, err = readSchema(tx); return err }); err != nil {
		return err
	}
	if cur > target {
		return fmt.Errorf("state was written by a newer hangar (schema %d); upgrade hangar (this build supports schema %d): %w",
			cur, target, ErrSchemaTooNew)
	}
	if cur == 0 {
		return db.Update(initSchema)
	}
	for cur < target {
		var m *migration
		for i := range migs {
			if migs[i].From == cur {
				m = &migs[i]
				break
			}
		}
		if m == nil {
			return fmt.Errorf("no migration from schema %d", cur)
		}
		err := db.Update(func(tx *bolt.Tx) error {
			if err := m.Apply(tx); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(keySchema, u64(uint64(cur+1)))
		})
		if err != nil {
			return fmt.Errorf("migrate schema %d -> %d (%s): %w", cur, cur+1, m.Name, err)
		}
		cur++
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func getU64(b *bolt.Bucket, k []byte) (uint64, error) {
	v := b.Get(k)
	if len(v) != 8 {
		return 0, fmt.Errorf("meta %q: missing or corrupt (%d bytes)", k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
