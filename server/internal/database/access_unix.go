//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package database

import "syscall"

// canWriteDir asks the system whether this process may create files in dir.
func canWriteDir(dir string) error { return syscall.Access(dir, 2 /* W_OK */) }
