package bench

import (
	"os/exec"
	"syscall"
)

// stopWithParent asks the kernel to send SIGTERM to the child when this
// process dies, so that servers do not outlive a benchmark binary that was
// killed or timed out before its cleanups ran.
func stopWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
