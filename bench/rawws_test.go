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
// pong and close frames. Writes are masked text frames. Once subscribed, a
// connection's messages are read by Loop, which skips the read(2) that
// would only return EAGAIN.
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

// Loop reads the rest of the connection's messages and calls handle with
// each text or binary message (valid until handle returns); it answers
// pings, and returns handle's first error, the read error, or errClosed.
//
// All the reads happen inside ONE syscall.RawConn.Read call: the function
// it runs reads what the socket has and handles every complete frame;
// when a read(2) has drained the socket (it returned less than asked, or
// EAGAIN), it returns false, and the runtime waits for readability and
// calls it again. This saves the read(2) that only returns EAGAIN, once
// per message, and it is sound only because the wait stays inside one
// Read call: each RawConn.Read (or net.Conn.Read) begins by clearing the
// poller's readiness, so waiting first at the start of a NEW call would
// miss data that arrived after the previous read. (An earlier version did
// exactly that, and an event that arrived right behind a ping, or a frame
// in two parts, waited for the next data: up to 15 s.)
func (c *rawConn) Loop(handle func(msg []byte) error) error {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return errors.New("websocket: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	in := make([]byte, 0, 4096) // bytes read, not yet handled
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		in = append(in, b...)
		_, _ = c.br.Discard(n)
	}
	var msg []byte // a fragmented message being assembled
	var loopErr error
	// consume handles the complete frames at the start of in and returns
	// how many bytes they took.
	consume := func() (int, error) {
		off := 0
		for {
			b := in[off:]
			if len(b) < 2 {
				return off, nil
			}
			fin, opcode := b[0]&0x80 != 0, b[0]&0x0f
			if b[1]&0x80 != 0 {
				return off, errors.New("websocket: masked frame from the server")
			}
			hl, n := 2, uint64(b[1]&0x7f)
			switch n {
			case 126:
				if len(b) < 4 {
					return off, nil
				}
				hl, n = 4, uint64(binary.BigEndian.Uint16(b[2:4]))
			case 127:
				if len(b) < 10 {
					return off, nil
				}
				hl, n = 10, binary.BigEndian.Uint64(b[2:10])
			}
			if n > 1<<24 {
				return off, fmt.Errorf("websocket: frame of %d bytes", n)
			}
			if uint64(len(b)-hl) < n {
				if need := hl + int(n); need > cap(in) {
					grown := make([]byte, len(in), need+off)
					copy(grown, in)
					in = grown
				}
				return off, nil
			}
			payload := b[hl : hl+int(n)]
			off += hl + int(n)
			switch {
			case opcode == 0x8:
				return off, errClosed
			case opcode == 0x9:
				if err := c.writeFrame(0xA, payload); err != nil {
					return off, err
				}
			case opcode >= 0x8: // pong
			case fin && msg == nil:
				if err := handle(payload); err != nil {
					return off, err
				}
			default: // fragments
				msg = append(msg, payload...)
				if fin {
					err := handle(msg)
					msg = nil
					if err != nil {
						return off, err
					}
				}
			}
		}
	}
	handleBuffered := func() bool {
		off, err := consume()
		in = in[:copy(in, in[off:])]
		if err != nil {
			loopErr = err
			return false
		}
		return true
	}
	if !handleBuffered() {
		return loopErr
	}
	rerr := rc.Read(func(fd uintptr) bool {
		for {
			if cap(in)-len(in) < 512 {
				in = append(in, make([]byte, 4096)...)[:len(in)]
			}
			space := in[len(in):cap(in)]
			n, err := syscall.Read(int(fd), space)
			switch {
			case errors.Is(err, syscall.EAGAIN):
				return false // wait for readability, within this Read call
			case errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				loopErr = err
				return true
			case n == 0:
				loopErr = io.EOF
				return true
			}
			in = in[:len(in)+n]
			if !handleBuffered() {
				return true
			}
			if n < len(space) {
				return false // drained: wait for more
			}
		}
	})
	if loopErr == nil {
		loopErr = rerr
	}
	return loopErr
}

// Close closes the socket without a close handshake.
func (c *rawConn) Close() error { return c.nc.Close() }
