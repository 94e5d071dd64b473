package graphqlws

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// The WebSocket library (coder/websocket) does the upgrade, reads, and
// writes the control frames (close, pong). Text messages are written here
// instead, straight to the socket: a server frame is a 2-to-10-byte header
// and the payload (RFC 6455 §5.2, unmasked), and writing it with one
// write(2) skips the library's per-message locking, context checks and
// buffered writer, a sixth of the server's CPU per delivery when one event
// goes to thousands of sockets.

// frameConn is the hijacked connection. Every write to it, the library's
// (whole control frames, flushed once each) and ours (whole text frames),
// holds mu, so frames never interleave.
//
// Writes are bounded by the socket's write deadline, which is moved only
// when less than half of timeout is left: a write to a client that does not
// read fails after timeout/2 to timeout, and an event sent to thousands of
// sockets costs one clock read per socket rather than arming and stopping a
// timer for each. (The library sets no deadline on the connection.)
type frameConn struct {
	net.Conn
	timeout time.Duration // 0: no deadline

	mu       sync.Mutex
	buf      []byte    // guarded by mu
	deadline time.Time // the socket's write deadline, guarded by mu
}

// Write implements io.Writer for the library's buffered writer.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.armLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// armLocked makes sure that the write deadline is at least timeout/2 away.
func (c *frameConn) armLocked() error {
	if c.timeout <= 0 {
		return nil
	}
	now := time.Now()
	if c.deadline.Sub(now) >= c.timeout/2 {
		return nil
	}
	c.deadline = now.Add(c.timeout)
	if err := c.Conn.SetWriteDeadline(c.deadline); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	return nil
}

// maxKeptFrameBuffer bounds the frame buffer kept between messages.
const maxKeptFrameBuffer = 16 << 10

// writeText writes p as one unfragmented text frame.
func (c *frameConn) writeText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append(c.buf[:0], 0x81) // FIN, opcode text
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, p...)
	if cap(b) <= maxKeptFrameBuffer {
		c.buf = b
	} else {
		c.buf = nil
	}
	if err := c.armLocked(); err != nil {
		return err
	}
	if _, err := c.Conn.Write(b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// hijackWriter hands the library a frameConn when it hijacks the
// connection.
type hijackWriter struct {
	http.ResponseWriter
	timeout time.Duration // the frameConn's write timeout
	conn    *frameConn    // set by Hijack
}

// Hijack implements http.Hijacker.
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // the 101 response, if still buffered
		_ = nc.Close()
		return nil, nil, fmt.Errorf("flush the upgrade response: %w", err)
	}
	fc := &frameConn{Conn: nc, timeout: w.timeout}
	brw.Writer.Reset(fc)
	w.conn = fc
	return fc, brw, nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
