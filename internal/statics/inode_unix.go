//go:build unix

package statics

import (
	"io/fs"
	"strconv"
	"syscall"
)

func inode(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return "-" + strconv.FormatUint(uint64(st.Ino), 36)
	}
	return ""
}
