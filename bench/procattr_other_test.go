//go:build !linux

package bench

import "os/exec"

// stopWithParent is a no-op outside Linux; the benchmarks' cleanups stop
// the servers.
func stopWithParent(*exec.Cmd) {}
