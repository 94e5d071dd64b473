//go:build !unix

package graphqlws

import "errors"

// writeNow has no non-blocking write(2) to make here: tryWriteText reports
// wouldBlock and the blocking write sends the frame.
func (c *frameConn) writeNow(uintptr) bool {
	c.rawN, c.rawErr = 0, errors.ErrUnsupported
	return true
}
