package hosts

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/types"
)

// DetectCapacity is what this machine offers: its CPUs, its memory
// (MemTotal) and the size of the data dir's disk. What cannot be read is
// left 0 (memory 0 takes no machine: pass the memory explicitly then).
func DetectCapacity(dataDir string) types.HostCapacity {
	c := types.HostCapacity{CPUs: runtime.NumCPU()}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				c.MemoryMB = kb / 1024
				break
			}
		}
		f.Close()
	}
	var st unix.Statfs_t
	if unix.Statfs(dataDir, &st) == nil {
		c.DiskMB = int64(st.Blocks) * int64(st.Bsize) >> 20
	}
	return c
}
