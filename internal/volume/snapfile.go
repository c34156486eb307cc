package volume

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Snapshot file format (the whole file is one zstd stream):
//
//	"HGVSNAP1"  size:uint64                 header: the image's size in bytes
//	off:uint64 len:uint64 data[len]          one data extent (holes are skipped)
//	...
//	0xffffffffffffffff 0                     end
//
// Extents are in increasing, non-overlapping order and lie inside size.
const snapMagic = "HGVSNAP1"

const endMark = ^uint64(0)

// ErrCorrupt marks a snapshot file that cannot be read back.
var ErrCorrupt = errors.New("corrupt snapshot")

// dataExtents lists the data regions of a sparse file ([off, end) pairs).
func dataExtents(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	off := int64(0)
	for off < size {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		if hole > size {
			hole = size
		}
		if hole > data {
			out = append(out, [2]int64{data, hole})
		}
		off = hole
	}
	return out, nil
}

// sparseCopy copies src to a new sparse file dst of the same size,
// copying only data extents (in the kernel where it can).
func sparseCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		out.Close()
		if !ok {
			os.Remove(dst)
		}
	}()
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	exts, err := dataExtents(in, fi.Size())
	if err != nil {
		return err
	}
	for _, e := range exts {
		roff, woff := e[0], e[0]
		for roff < e[1] {
			n, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(e[1]-roff), 0)
			if err != nil {
				return fmt.Errorf("copy extent at %d: %w", roff, err)
			}
			if n == 0 {
				return fmt.Errorf("copy extent at %d: unexpected end of file", roff)
			}
		}
	}
	if err := out.Sync(); err != nil {
		return err
	}
	ok = true
	return nil
}

// writeSnapshot compresses the data extents of the sparse image at path
// into w. It returns the image's size.
func writeSnapshot(path string, w io.Writer) (int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	exts, err := dataExtents(in, size)
	if err != nil {
		return 0, err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	var hdr [16]byte
	put := func(a, b uint64) error {
		binary.BigEndian.PutUint64(hdr[:8], a)
		binary.BigEndian.PutUint64(hdr[8:], b)
		_, err := bw.Write(hdr[:])
		return err
	}
	if _, err := bw.WriteString(snapMagic); err != nil {
		return 0, err
	}
	binary.BigEndian.PutUint64(hdr[:8], uint64(size))
	if _, err := bw.Write(hdr[:8]); err != nil {
		return 0, err
	}
	for _, e := range exts {
		if err := put(uint64(e[0]), uint64(e[1]-e[0])); err != nil {
			return 0, err
		}
		if _, err := io.Copy(bw, io.NewSectionReader(in, e[0], e[1]-e[0])); err != nil {
			return 0, fmt.Errorf("read image at %d: %w", e[0], err)
		}
	}
	if err := put(endMark, 0); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return size, nil
}

// sizedWriterAt is where readSnapshot writes an image: it is told the size
// first (and may refuse it).
type sizedWriterAt interface {
	io.WriterAt
	Truncate(size int64) error
}

// readSnapshot restores an image from a snapshot stream into w, checking
// every header against the image size so that a damaged or hostile file
// cannot write outside it. maxSize bounds the image size it accepts.
func readSnapshot(r io.Reader, w sizedWriterAt, maxSize int64) (int64, error) {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<20)
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:16]); err != nil {
		return 0, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(hdr[:8]) != snapMagic {
		return 0, fmt.Errorf("%w: not a Hangar volume snapshot", ErrCorrupt)
	}
	size := binary.BigEndian.Uint64(hdr[8:])
	if size == 0 || size > uint64(maxSize) {
		return 0, fmt.Errorf("%w: image size %d out of range", ErrCorrupt, size)
	}
	if err := w.Truncate(int64(size)); err != nil {
		return 0, err
	}
	next := uint64(0)
	buf := make([]byte, 1<<20)
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return 0, fmt.Errorf("%w: extent header: %v", ErrCorrupt, err)
		}
		off, n := binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint64(hdr[8:])
		if off == endMark {
			if n != 0 {
				return 0, fmt.Errorf("%w: bad end mark", ErrCorrupt)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return 0, fmt.Errorf("%w: data after the end mark", ErrCorrupt)
			}
			return int64(size), nil
		}
		if off < next || n == 0 || off > size || n > size-off {
			return 0, fmt.Errorf("%w: extent [%d,+%d) out of order or outside the image", ErrCorrupt, off, n)
		}
		for n > 0 {
			c := uint64(len(buf))
			if n < c {
				c = n
			}
			if _, err := io.ReadFull(br, buf[:c]); err != nil {
				return 0, fmt.Errorf("%w: extent data: %v", ErrCorrupt, err)
			}
			if _, err := w.WriteAt(buf[:c], int64(off)); err != nil {
				return 0, err
			}
			off += c
			n -= c
		}
		next = off
	}
}
