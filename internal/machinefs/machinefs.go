// Package machinefs reads and writes files of a running machine from the
// host, for `hangar ssh sftp`: no tool in the image is needed (no sftp
// server, no shell, no cat). A Root is the machine's root directory as
// its own processes see it — /proc/<pid>/root of its init, so the
// machine's mounts (volumes, [[files]]) are there too — and every path is
// resolved with openat2's RESOLVE_IN_ROOT: "..", absolute symlinks and
// symlinks that climb are resolved as inside the machine (as chroot would),
// so nothing outside its root filesystem is ever reached. A path the
// caller gives that climbs above "/" ("../../etc/shadow") is refused
// outright: it is a mistake or an attack, never a machine path.
package machinefs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/types"
)

// Errors the API maps to status codes.
var (
	ErrInvalid  = types.NewError(types.ErrInvalid, "invalid")
	ErrNotFound = types.NewError(types.ErrNotFound, "not found")
	ErrConflict = types.NewError(types.ErrConflict, "conflict")
)

// resolve is how every path is resolved: inside the root, never through
// /proc's magic links.
const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// Root is a running machine's root directory. Close it when done.
type Root struct {
	fd int
}

// Open opens the root directory of the process pid (a machine's init).
// The process is pinned with a pidfd while /proc/<pid>/root is opened,
// and checked alive after: a pid that was reused in between is refused.
func Open(pid int) (*Root, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("machine process %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("root of machine process %d: %w", pid, err)
	}
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("machine process %d exited while its root was opened: %w", pid, ErrConflict)
	}
	return &Root{fd: fd}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Clean makes p a machine path: absolute, cleaned; a relative path is
// taken from "/". A path that climbs above "/" is refused.
func Clean(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("no path given: %w", ErrInvalid)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("path %q has a NUL byte: %w", p, ErrInvalid)
	}
	depth := 0
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", fmt.Errorf("path %q climbs above the machine's root: name the file by its path inside the machine, e.g. /etc/hosts: %w", p, ErrInvalid)
			}
		default:
			depth++
		}
	}
	return path.Clean("/" + p), nil
}

// openat2 opens p (a Clean path) under the root.
func (r *Root) openat2(p string, flags uint64, mode uint32) (*os.File, error) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: uint64(mode), Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN {
			continue // a rename raced the lookup (EAGAIN): retry
		}
		if err != nil {
			return nil, pathError(p, err)
		}
		return os.NewFile(uintptr(fd), p), nil
	}
}

// pathError names p and the category of err.
func pathError(p string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%s: no such file or directory in the machine: %w", p, ErrNotFound)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: a part of the path is not a directory: %w", p, ErrInvalid)
	case errors.Is(err, unix.EISDIR):
		return fmt.Errorf("%s is a directory: %w", p, ErrInvalid)
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%s: too many symbolic links: %w", p, ErrInvalid)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s: resolves outside the machine's root: %w", p, ErrInvalid)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s: %v: %w", p, err, ErrConflict)
	}
	return fmt.Errorf("%s: %w", p, err)
}

// OpenFile opens the regular file at p for reading (p is Clean'd).
func (r *Root) OpenFile(p string) (*os.File, fs.FileInfo, error) {
	p, err := Clean(p)
	if err != nil {
		return nil, nil, err
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is then
	// refused below, like any file that is not regular.
	f, err := r.openat2(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is a directory: list it with `ls`, or get a file in it: %w", p, ErrInvalid)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s): %w", p, fi.Mode().Type(), ErrInvalid)
	}
	return f, fi, nil
}

// Stat describes p, and with the entries of a directory.
func (r *Root) Stat(p string) (types.FileInfo, error) {
	p, err := Clean(p)
	if err != nil {
		return types.FileInfo{}, err
	}
	f, err := r.openat2(p, unix.O_PATH, 0)
	if err != nil {
		return types.FileInfo{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return types.FileInfo{}, fmt.Errorf("%s: %w", p, err)
	}
	info := fileInfo(path.Base(p), &st, "")
	info.Path = p
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return info, nil
	}
	d, err := r.openat2(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return types.FileInfo{}, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return types.FileInfo{}, fmt.Errorf("list %s: %w", p, err)
	}
	sort.Strings(names)
	info.Entries = []types.FileInfo{}
	for _, name := range names {
		var est unix.Stat_t
		if err := unix.Fstatat(int(d.Fd()), name, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // gone meanwhile
		}
		link := ""
		if est.Mode&unix.S_IFMT == unix.S_IFLNK {
			buf := make([]byte, 4096)
			if n, err := unix.Readlinkat(int(d.Fd()), name, buf); err == nil {
				link = string(buf[:n])
			}
		}
		info.Entries = append(info.Entries, fileInfo(name, &est, link))
	}
	return info, nil
}

func fileInfo(name string, st *unix.Stat_t, link string) types.FileInfo {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	return types.FileInfo{Name: name, Size: st.Size, Mode: lsMode(st.Mode), Perm: uint32(st.Mode & 0o7777),
		IsDir: mode.IsDir(), Link: link, UID: st.Uid, GID: st.Gid,
		ModTime: time.Unix(st.Mtim.Unix()).UTC().Format(time.RFC3339)}
}

// lsMode is a file's type and permissions as ls -l shows them.
func lsMode(m uint32) string {
	kind := map[uint32]byte{unix.S_IFDIR: 'd', unix.S_IFLNK: 'l', unix.S_IFIFO: 'p', unix.S_IFSOCK: 's', unix.S_IFCHR: 'c', unix.S_IFBLK: 'b'}[m&unix.S_IFMT]
	if kind == 0 {
		kind = '-'
	}
	b := []byte{kind}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	for _, sp := range []struct {
		bit uint32
		pos int
		set byte
	}{{unix.S_ISUID, 3, 's'}, {unix.S_ISGID, 6, 's'}, {unix.S_ISVTX, 9, 't'}} {
		if m&sp.bit != 0 {
			if b[sp.pos] == '-' {
				b[sp.pos] = sp.set - 'a' + 'A'
			} else {
				b[sp.pos] = sp.set
			}
		}
	}
	return string(b)
}

// Upload is a file being written: it appears at its path only on Commit
// (a temporary file in the same directory, renamed), so a reader never
// sees half of it and a failed upload leaves nothing.
type Upload struct {
	*os.File
	dir       *os.File
	tmp, name string
	path      string
}

// Create starts writing the file at p (p is Clean'd). The file gets mode
// perm, or when 0 that of the file it replaces (default 0644); a file it
// replaces keeps its owner. The parent directory must exist.
func (r *Root) Create(p string, perm uint32) (*Upload, error) {
	p, err := Clean(p)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, fmt.Errorf("/ is a directory: name the file to write: %w", ErrInvalid)
	}
	dir, err := r.openat2(path.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	name := path.Base(p)
	uid, gid := -1, -1
	var st unix.Stat_t
	switch err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		dir.Close()
		return nil, fmt.Errorf("%s is a directory: put the file at a path inside it: %w", p, ErrInvalid)
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG:
		uid, gid = int(st.Uid), int(st.Gid)
		if perm == 0 {
			perm = st.Mode & 0o7777
		}
	}
	if perm == 0 {
		perm = 0o644
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tmp := ".hangar-upload-" + hex.EncodeToString(b)
	fd, err := unix.Openat(int(dir.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		dir.Close()
		return nil, pathError(p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	// The mode as asked, whatever the umask.
	_ = unix.Fchmod(fd, perm)
	if uid >= 0 {
		_ = unix.Fchown(fd, uid, gid)
	}
	return &Upload{File: f, dir: dir, tmp: tmp, name: name, path: p}, nil
}

// Commit makes the written file durable and puts it at its path.
func (u *Upload) Commit() error {
	defer u.dir.Close()
	if err := u.File.Sync(); err != nil {
		u.File.Close()
		_ = unix.Unlinkat(int(u.dir.Fd()), u.tmp, 0)
		return fmt.Errorf("write %s: %w", u.path, err)
	}
	if err := u.File.Close(); err != nil {
		_ = unix.Unlinkat(int(u.dir.Fd()), u.tmp, 0)
		return fmt.Errorf("write %s: %w", u.path, err)
	}
	if err := unix.Renameat(int(u.dir.Fd()), u.tmp, int(u.dir.Fd()), u.name); err != nil {
		_ = unix.Unlinkat(int(u.dir.Fd()), u.tmp, 0)
		return pathError(u.path, err)
	}
	_ = unix.Fsync(int(u.dir.Fd()))
	return nil
}

// Abort removes what was written.
func (u *Upload) Abort() {
	u.File.Close()
	_ = unix.Unlinkat(int(u.dir.Fd()), u.tmp, 0)
	u.dir.Close()
}

// OpenDir opens a directory of the host as a Root: what Open does for a
// machine's /proc/<pid>/root, for tests and tools.
func OpenDir(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &Root{fd: fd}, nil
}
