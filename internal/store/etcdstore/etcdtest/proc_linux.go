package etcdtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills a member's process if the test process dies first
// (a test binary killed on timeout must not leave etcd members behind).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
