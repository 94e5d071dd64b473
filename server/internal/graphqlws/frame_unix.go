//go:build unix

package graphqlws

import "syscall"

// writeNow is the RawConn write function of tryWriteText: one write(2),
// whatever it does (true: do not wait for the socket).
func (c *frameConn) writeNow(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), c.rawBuf)
		if err == syscall.EINTR {
			continue
		}
		c.rawN, c.rawErr = n, err
		return true
	}
}
