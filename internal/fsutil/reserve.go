package fsutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DiskState is how full the file system of a directory is.
type DiskState struct {
	Path       string `json:"path"`
	TotalBytes int64  `json:"total_bytes"`
	FreeBytes  int64  `json:"free_bytes"` // available to this process, the reserve not counted
	// Full is true when the reserve is not in place: it had to be given
	// back, or there is no room for it. Only the state store should write.
	Full bool `json:"full"`
	// ReserveHeld says whether the reserve file is in place (false: it was
	// given back to keep state writes possible).
	ReserveHeld bool `json:"reserve_held"`
}

// Reserve keeps a file of Size bytes in a directory so that, when other
// writers fill the disk, deleting it frees space for the writes that
// matter (the state store). Check gives the space back when the disk is
// full and takes it again once there is room.
type Reserve struct {
	Path string // the reserve file
	Size int64

	mu    sync.Mutex // guards state
	state DiskState
}

// Check looks at the disk: when less than Size is free it removes the
// reserve file (if it is there); when more than twice Size is free it
// (re)creates it, with its blocks allocated. It returns the disk's state.
func (r *Reserve) Check() (DiskState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := filepath.Dir(r.Path)
	st, err := statDisk(dir)
	if err != nil {
		return r.state, err
	}
	_, serr := os.Stat(r.Path)
	held := serr == nil
	switch {
	case st.FreeBytes < r.Size && held:
		if err := os.Remove(r.Path); err != nil {
			return r.state, fmt.Errorf("give back the disk reserve %s: %w", r.Path, err)
		}
		held = false
	case st.FreeBytes > 2*r.Size && !held:
		if err := allocate(r.Path, r.Size); err != nil {
			return r.state, err
		}
		held = true
	}
	if st, err = statDisk(dir); err != nil {
		return r.state, err
	}
	st.ReserveHeld = held
	st.Full = !held
	r.state = st
	return st, nil
}

// State returns what the last Check found.
func (r *Reserve) State() DiskState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func statDisk(dir string) (DiskState, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return DiskState{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return DiskState{Path: dir, TotalBytes: int64(st.Blocks) * st.Bsize, FreeBytes: int64(st.Bavail) * st.Bsize}, nil
}

// allocate makes a file of size bytes whose blocks are really allocated
// (fallocate; written zeros where the file system has no fallocate), so
// that removing it frees that much.
func allocate(path string, size int64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("disk reserve %s: %w", path, err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("disk reserve %s of %d bytes: %w", path, size, err)
	}
	return nil
}

func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// Watch runs Check every interval until ctx ends, and logs each change:
// the reserve given back when the disk fills (an error: only state writes
// go on), taken again when there is room.
func (r *Reserve) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	full := r.State().Full
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ds, err := r.Check()
		if err != nil {
			log.Warn("disk reserve", "err", err)
			continue
		}
		if ds.Full != full {
			full = ds.Full
			if full {
				log.Error("the data dir's disk is full; gave back the reserve for state writes; free space", "path", ds.Path, "free_bytes", ds.FreeBytes)
			} else {
				log.Info("the data dir's disk has room again", "path", ds.Path, "free_bytes", ds.FreeBytes)
			}
		}
	}
}
