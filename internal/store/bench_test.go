package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hangar-dev/hangar/internal/store"
)

var benchValue = []byte(`{"id":"148e000c","name":"web-1","state":"started","region":"local","config":{"image":"registry.local/app:v1","guest":{"cpus":1,"memory_mb":256}}}`)

// BenchmarkPut measures durable (fsynced) single-key writes.
func BenchmarkPut(b *testing.B) {
	s := openLocal(b, store.Options{})
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("machines/%06d", i%1000), benchValue, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutNoSync is Put without fsync: the store's own overhead.
func BenchmarkPutNoSync(b *testing.B) {
	s := openLocal(b, store.Options{NoSync: true})
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("machines/%06d", i%1000), benchValue, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutWithWatchers is Put with 10 live watchers on the prefix.
func BenchmarkPutWithWatchers(b *testing.B) {
	s := openLocal(b, store.Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 10; i++ {
		ch, err := s.Watch(ctx, "machines/", 0)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for range ch {
			}
		}()
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("machines/%06d", i%1000), benchValue, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}

func seed(b *testing.B, s store.Store, n int) {
	b.Helper()
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		var ops []store.Op
		for j := i; j < i+100 && j < n; j++ {
			ops = append(ops, store.Op{Key: fmt.Sprintf("machines/%06d", j), Value: benchValue, Expect: store.AnyRevision})
		}
		if _, err := s.Txn(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	s := openLocal(b, store.Options{NoSync: true})
	seed(b, s, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(ctx, fmt.Sprintf("machines/%06d", i%10000)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s := openLocal(b, store.Options{NoSync: true})
	seed(b, s, 10000)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(ctx, fmt.Sprintf("machines/%06d", i%10000)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkList100 lists a 100-key prefix out of 10000 keys.
func BenchmarkList100(b *testing.B) {
	s := openLocal(b, store.Options{NoSync: true})
	seed(b, s, 10000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		kvs, err := s.List(ctx, fmt.Sprintf("machines/00%02d", i%100))
		if err != nil || len(kvs) != 100 {
			b.Fatal(len(kvs), err)
		}
	}
}
