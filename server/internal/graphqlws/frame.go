package graphqlws

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
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
//
// tryWriteText writes a frame without blocking, with one write(2) on the
// raw socket. When the socket takes only part of it, the rest is kept in
// partial, and every later write (the library's included) sends it first:
// frames are never cut into.
type frameConn struct {
	net.Conn
	timeout time.Duration   // 0: no deadline
	raw     syscall.RawConn // nil: no non-blocking writes

	// wrote is set by every write of an operation's message and cleared by
	// the keep-alive tick: pings go only to connections that carried no
	// operation message for a whole interval. (A flag rather than a time:
	// one store per write, no clock read.)
	wrote atomic.Bool

	mu       sync.Mutex
	buf      []byte    // guarded by mu
	deadline time.Time // the socket's write deadline, guarded by mu
	partial  []byte    // the unsent rest of a frame, guarded by mu

	// The non-blocking write, a method value made once (a closure per
	// call would be allocated). Guarded by mu.
	rawWrite func(fd uintptr) bool
	rawBuf   []byte
	rawN     int
	rawErr   error
}

func newFrameConn(nc net.Conn, timeout time.Duration) *frameConn {
	c := &frameConn{Conn: nc, timeout: timeout}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.rawWrite = c.writeNow
		}
	}
	return c
}

// Write implements io.Writer for the library's buffered writer.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.flushPartialLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// flushPartial writes the rest of a frame that tryWriteText left, if any.
func (c *frameConn) flushPartial() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushPartialLocked()
}

// flushPartialLocked writes the rest of a partial frame (if any) and arms
// the deadline for the caller's write.
func (c *frameConn) flushPartialLocked() error {
	if err := c.armLocked(); err != nil {
		return err
	}
	if len(c.partial) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.partial)
	if cap(c.partial) <= maxKeptFrameBuffer {
		c.partial = c.partial[:0]
	} else {
		c.partial = nil
	}
	if err != nil {
		return fmt.Errorf("write the rest of a frame: %w", err)
	}
	return nil
}

// partialFrames counts the direct writes that were cut short (tests make
// sure that they happen).
var partialFrames atomic.Int64

// writeResult is the outcome of a non-blocking write.
type writeResult int

const (
	written    writeResult = iota // all of it (or nothing may be written)
	partial                       // a part: the rest waits in partial
	wouldBlock                    // nothing: try again with a blocking write
)

// tryWriteText writes p as one text frame if that can be done at once: it
// never waits, for the socket or for another writer.
func (c *frameConn) tryWriteText(p []byte) writeResult {
	if c.raw == nil || !c.mu.TryLock() {
		return wouldBlock
	}
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		return wouldBlock
	}
	b := c.frame(p)
	c.rawBuf, c.rawN, c.rawErr = b, 0, nil
	if err := c.raw.Write(c.rawWrite); err != nil {
		return wouldBlock // closed: the blocking write reports it
	}
	n, err := c.rawN, c.rawErr
	c.rawBuf = nil
	if n > 0 {
		c.wrote.Store(true)
	}
	switch {
	case err != nil || n <= 0:
		// EAGAIN (the socket is full), or an error that the blocking
		// write will meet and report.
		return wouldBlock
	case n < len(b):
		c.partial = append(c.partial[:0], b[n:]...)
		partialFrames.Add(1)
		return partial
	}
	return written
}

// armLocked makes sure that the write deadline is at least timeout/2 away,
// for a write that follows.
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
	if err := c.flushPartialLocked(); err != nil {
		return err
	}
	if _, err := c.Conn.Write(c.frame(p)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// frame returns p as a text frame, in c.buf; called with mu held.
func (c *frameConn) frame(p []byte) []byte {
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
	return b
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
	fc := newFrameConn(nc, w.timeout)
	brw.Writer.Reset(fc)
	w.conn = fc
	return fc, brw, nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
