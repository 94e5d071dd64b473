//go:build linux

package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// rawConn is the minimal WebSocket client (RFC 6455) of the fan-out
// benchmark's subscribers. The subscribers share the machine with the
// server, so their CPU time per message counts against the server's
// latency: rawConn reads a frame straight from a bufio.Reader into the
// caller's buffer, with no allocation, context or goroutine per message
// (coder/websocket's reader costs several times more). It handles what the
// server sends: unmasked text frames, fragmented or not, ping (answered),
// pong and close frames. Writes are masked text frames. Reads skip the
// read(2) that would only return EAGAIN (see pollReader).
type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
	wb  []byte // write buffer, guarded by wmu
	key [4]byte
}

// dialRaw connects to addr and performs the upgrade for path with the
// subprotocol.
func dialRaw(ctx context.Context, addr, path, subprotocol string) (*rawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + subprotocol + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 1024)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade response: %w", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if res.StatusCode != http.StatusSwitchingProtocols ||
		res.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) ||
		res.Header.Get("Sec-WebSocket-Protocol") != subprotocol {
		nc.Close()
		return nil, fmt.Errorf("upgrade refused: %s", res.Status)
	}
	c := &rawConn{nc: nc, br: br, wb: make([]byte, 0, 256)}
	_, _ = rand.Read(c.key[:])
	return c, nil
}

// WriteText sends p as one masked text frame.
func (c *rawConn) WriteText(p []byte) error { return c.writeFrame(0x1, p) }

func (c *rawConn) writeFrame(opcode byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := append(c.wb[:0], 0x80|opcode)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, c.key[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= c.key[i&3]
	}
	c.wb = b
	_, err := c.nc.Write(b)
	return err
}

// errClosed is returned by ReadMessage after a close frame.
var errClosed = errors.New("websocket: closed by the server")

// ReadMessage reads the next text or binary message, appended to buf.
func (c *rawConn) ReadMessage(buf []byte) ([]byte, error) {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
			return buf, err
		}
		fin, opcode := hdr[0]&0x80 != 0, hdr[0]&0x0f
		if hdr[1]&0x80 != 0 {
			return buf, errors.New("websocket: masked frame from the server")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
				return buf, err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(c.br, hdr[:8]); err != nil {
				return buf, err
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if n > 1<<24 {
			return buf, fmt.Errorf("websocket: frame of %d bytes", n)
		}
		if opcode >= 0x8 { // control frame
			payload := make([]byte, n) // rare: not on the hot path
			if _, err := io.ReadFull(c.br, payload); err != nil {
				return buf, err
			}
			switch opcode {
			case 0x8:
				return buf, errClosed
			case 0x9:
				if err := c.writeFrame(0xA, payload); err != nil {
					return buf, err
				}
			}
			continue
		}
		start := len(buf)
		buf = append(buf, make([]byte, n)...)[:start+int(n)]
		if _, err := io.ReadFull(c.br, buf[start:]); err != nil {
			return buf, err
		}
		if fin {
			return buf, nil
		}
	}
}

// pollReader reads the socket through its syscall.RawConn. After a read
// that drained the socket, the next one waits for readability before
// calling read(2): a plain net.Conn read would first try read(2), get
// EAGAIN, and only then wait, one wasted system call per message.
type pollReader struct {
	rc      syscall.RawConn
	drained bool // the last read returned less than asked for
}

func (r *pollReader) Read(p []byte) (int, error) {
	var n int
	var err error
	wait := r.drained
	rerr := r.rc.Read(func(fd uintptr) bool {
		if wait {
			wait = false
			return false // wait for readability first
		}
		n, err = syscall.Read(int(fd), p)
		return !errors.Is(err, syscall.EAGAIN)
	})
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	r.drained = n < len(p)
	return n, nil
}

// pollReads switches c's reads to a pollReader, once nothing is buffered.
func (c *rawConn) pollReads() {
	if c.br.Buffered() > 0 {
		return
	}
	sc, err := c.nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		return
	}
	c.br.Reset(&pollReader{rc: sc})
}

// Close closes the socket without a close handshake.
func (c *rawConn) Close() error { return c.nc.Close() }
