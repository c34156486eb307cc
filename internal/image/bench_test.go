package image

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BenchmarkUnpack measures unpacking a ~10 MB image (one gzip layer of 200
// files of 50 KiB, half random, half compressible text) into a fresh
// directory.
func BenchmarkUnpack(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var entries []entry
	var total int64
	for i := range 200 {
		buf := make([]byte, 50<<10)
		if i%2 == 0 {
			for j := range buf {
				buf[j] = byte(rng.UintN(256))
			}
		} else {
			for j := range buf {
				buf[j] = "hangar image store "[j%19]
			}
		}
		total += int64(len(buf))
		entries = append(entries, file(fmt.Sprintf("usr/lib/d%02d/f%03d", i%20, i), string(buf)))
	}
	img := layeredImage(b, tarBytes(b, entries...))
	s := newTestStore(b)
	// Store the blobs once; the benchmark is the unpack from local blobs.
	d, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.writeBlobs(context.Background(), img, d); err != nil {
		b.Fatal(err)
	}
	local, err := newBlobImage(s.blobs, descFor(d))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		dir, err := os.MkdirTemp(b.TempDir(), "rootfs-")
		if err != nil {
			b.Fatal(err)
		}
		if err := unpackImage(context.Background(), local, dir, s.log); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := os.Stat(filepath.Join(dir, "usr/lib/d00/f000")); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

func descFor(h v1.Hash) v1.Descriptor { return v1.Descriptor{Digest: h} }
