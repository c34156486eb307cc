package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FilesDirFor returns where a daemon with dataDir keeps its machines'
// [[files]] contents, one directory per machine named by its id: under
// /dev/shm when that is a tmpfs (secret files never touch the disk, and
// vanish at reboot), else under the data dir. The secrets hook
// (secrets.Hook) writes a machine's files there before each boot; the
// supervisor removes them as soon as no task of the machine runs: when it
// stops, exits, fails to start, is replaced by an update, or is destroyed.
func FilesDirFor(dataDir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		sum := sha256.Sum256([]byte(dataDir))
		return filepath.Join("/dev/shm", "hangar-"+hex.EncodeToString(sum[:6]), "files")
	}
	return filepath.Join(dataDir, "run", "files")
}

// removeFiles removes a machine's [[files]] directory, if it has one. The
// files are written afresh at every boot, so a machine without a running
// task never needs them.
func (s *Supervisor) removeFiles(id string) {
	if s.filesDir == "" || !plainName(id) {
		return
	}
	if err := os.RemoveAll(filepath.Join(s.filesDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("remove the machine's [[files]]", "machine", id, "err", err)
	}
}

// plainName reports whether id can only name one entry of a directory
// (machine ids are hex).
func plainName(id string) bool {
	if id == "" || id == "." || id == ".." {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
