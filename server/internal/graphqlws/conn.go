package graphqlws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// conn serves one WebSocket connection. Its goroutines: the reader (the
// goroutine of Transport.Do, which handles messages in order) and one per
// running operation. The init timeout, the request context's end, the
// keep-alive pings and the revalidation are timers and context callbacks,
// which cost no goroutine between their runs: with thousands of idle
// subscribers, goroutine stacks are most of the memory of a connection.
// Operations and running callbacks are counted in wg, and Do returns only
// when they have all ended.
type conn struct {
	t       *Transport
	ws      *websocket.Conn
	raw     *frameConn // ws's socket: text messages are written to it directly (nil: through ws)
	exec    graphql.GraphExecutor
	log     *slog.Logger
	headers http.Header

	// ctx is cancelled when the connection closes; every operation's
	// context derives from it.
	ctx     context.Context
	cancel  context.CancelFunc
	session *Session

	wg sync.WaitGroup

	closeOnce sync.Once
	closed    atomic.Bool

	// writeMu serializes writes to ws. A write that fails (the client
	// stopped reading for the write timeout, see frameConn) closes the
	// socket.
	writeMu sync.Mutex

	// timersMu guards stopping and timers. Once stopping is set, no timer
	// or context callback starts any more (see enter).
	timersMu  sync.Mutex
	stopping  bool
	timers    []*time.Timer
	stopWatch func() bool // unregisters the request context's callback
	tracked   bool        // registered for the transport's sweep (RevalidateAll)
	// sweepSlice is the connection's slice of the sweep, guarded by the
	// Transport's sweepMu.
	sweepSlice int
	initSeen   atomic.Bool // connection_init arrived: the init timeout is moot
	initTimer  *time.Timer // set by serve before the reader starts

	// Reader-only state.
	initReceived bool
	acked        bool
	refusedInRow int // subscribes refused by RateLimit since the last one allowed

	// client is what the connection counts against for the per-client
	// caps (nil: nothing).
	client atomic.Pointer[clientKeys]

	// revalMu serializes Revalidate calls so that an older context never
	// replaces a newer one.
	revalMu sync.Mutex

	opsMu sync.Mutex
	ops   map[string]*operation
}

// operation is one running subscribe.
type operation struct {
	id     string
	cancel context.CancelFunc
	// stopped is set when the client completed the operation: nothing more
	// may be sent for it.
	stopped atomic.Bool
	// member is set when the operation runs in a shared group.
	member atomic.Pointer[member]
}

var (
	errOpStopped  = errors.New("graphqlws: operation stopped")
	errConnClosed = errors.New("graphqlws: connection closed")
	// errClientCapped: the connection was closed for a per-client cap.
	errClientCapped = errors.New("graphqlws: connection closed: too many connections for its client")
)

func newConn(t *Transport, ws *websocket.Conn, raw *frameConn, r *http.Request, exec graphql.GraphExecutor, log *slog.Logger) *conn {
	ctx, cancel := context.WithCancel(r.Context())
	c := &conn{
		t:       t,
		ws:      ws,
		raw:     raw,
		exec:    exec,
		log:     log.With("remote", r.RemoteAddr),
		headers: r.Header.Clone(),
		cancel:  cancel,
		ops:     make(map[string]*operation),
	}
	c.session = newSession(ctx, t.GateSubject)
	c.ctx = c.session.base
	return c
}

func (c *conn) serve() {
	c.log.Debug("graphqlws: connection opened")
	c.initTimer = c.after(c.t.initTimeout(), func() {
		if !c.initSeen.Load() {
			c.close(CloseConnectionInitialisationTimeout, "Connection initialisation timeout")
		}
	})
	// Either c.close ran (which cancels ctx: then this is a no-op), or the
	// request's context ended while the socket is still open (the server
	// shutting down).
	stop := context.AfterFunc(c.ctx, func() {
		if c.enter() {
			defer c.wg.Done()
			c.close(int(websocket.StatusGoingAway), "Going away")
		}
	})
	c.timersMu.Lock()
	c.stopWatch = stop
	c.timersMu.Unlock()

	c.readLoop()

	// The peer is gone or a close was already sent; this only makes sure
	// that everything stops.
	c.close(int(websocket.StatusNormalClosure), "")
	_ = c.ws.CloseNow()
	c.timersMu.Lock()
	c.stopping = true
	if c.tracked {
		c.t.untrack(c)
	}
	for _, t := range c.timers {
		t.Stop()
	}
	c.stopWatch()
	c.timersMu.Unlock()
	c.wg.Wait()
	c.releaseClient()
	c.log.Debug("graphqlws: connection ended")
}

// enter admits a timer or context callback: it reports false once the
// connection is ending, and otherwise counts the callback in wg (the
// caller calls wg.Done).
func (c *conn) enter() bool {
	c.timersMu.Lock()
	defer c.timersMu.Unlock()
	if c.stopping {
		return false
	}
	c.wg.Add(1)
	return true
}

// after runs f once, d from now, unless the connection has ended; it
// returns the timer (nil when the connection has ended).
func (c *conn) after(d time.Duration, f func()) *time.Timer {
	c.timersMu.Lock()
	defer c.timersMu.Unlock()
	if c.stopping {
		return nil
	}
	t := time.AfterFunc(d, func() {
		if c.enter() {
			defer c.wg.Done()
			f()
		}
	})
	c.timers = append(c.timers, t)
	return t
}

// close closes the connection with code and reason, once: it stops every
// operation and helper goroutine, then performs the close handshake.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		// No message after the close frame: wait for a write in flight
		// (bounded by the write watchdog).
		c.writeMu.Lock()
		c.writeMu.Unlock() //nolint:staticcheck // an empty critical section, to wait
		c.cancel()
		reason = closeReason(reason)
		if code != int(websocket.StatusNormalClosure) {
			c.log.Info("graphqlws: closing connection", "code", code, "reason", reason)
		}
		if err := c.ws.Close(websocket.StatusCode(code), reason); err != nil {
			c.log.Debug("graphqlws: close handshake", "code", code, "err", err)
		}
	})
}

func (c *conn) readLoop() {
	for {
		// Reads use their own context: cancelling c.ctx must not abort the
		// close handshake, which c.close runs after cancelling it.
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			if s := websocket.CloseStatus(err); s == -1 && !c.closed.Load() {
				c.log.Debug("graphqlws: read failed", "err", err)
			}
			return
		}
		start := graphql.Now()
		msg, err := parseMessage(data)
		if err != nil {
			c.close(CloseBadRequest, err.Error())
			return
		}
		if !c.handle(msg, start) {
			return
		}
	}
}

// handle handles one message; it returns false when the connection is closed.
func (c *conn) handle(msg inbound, start time.Time) bool {
	switch msg.Type {
	case msgConnectionInit:
		return c.handleInit(msg)
	case msgPing:
		if c.acked && c.t.Revalidate != nil {
			if _, ok := msg.Payload["accessToken"]; ok {
				if err := c.revalidate(msg.Payload); err != nil {
					c.closeForHookError(err)
					return false
				}
			}
		}
		return c.send(outbound{Type: msgPong}) == nil
	case msgPong:
		return true
	case msgSubscribe:
		return c.handleSubscribe(msg, start)
	case msgComplete:
		c.stopOperation(msg.ID)
		return true
	default: // connection_ack, next, error: only a server sends these.
		c.close(CloseBadRequest, fmt.Sprintf("Unexpected message of type %s received", msg.Type))
		return false
	}
}

func (c *conn) handleInit(msg inbound) bool {
	if c.initReceived {
		c.close(CloseTooManyInitialisationRequests, "Too many initialisation requests")
		return false
	}
	c.initReceived = true
	c.initSeen.Store(true)
	c.initTimer.Stop()
	payload := msg.Payload
	c.session.initPayload.Store(&payload)

	if c.t.Authenticate != nil {
		ctx, err := callHook(c.t.Authenticate, c.ctx, payload)
		if err != nil {
			c.log.Info("graphqlws: authentication failed", "err", err)
			c.closeForHookError(err)
			return false
		}
		c.session.setContext(ctx)
	}
	if reason := c.admitClient(c.session.Context()); reason != "" {
		c.log.Info("graphqlws: connection refused", "reason", reason)
		c.close(CloseTryAgainLater, reason)
		return false
	}
	c.acked = true
	if err := c.send(outbound{Type: msgConnectionAck}); err != nil {
		return false
	}
	if d := c.t.keepAlive(); d > 0 {
		c.every(d, c.keepAliveTick)
	}
	switch d := c.t.revalidateEvery(); {
	case d <= 0:
	case c.t.RevalidateAll != nil:
		c.timersMu.Lock()
		if !c.stopping {
			c.t.track(c)
			c.tracked = true
		}
		c.timersMu.Unlock()
	case c.t.Revalidate != nil:
		c.every(d, c.revalidateTick)
	}
	return true
}

// every calls tick every d (d after the previous tick ended) until the
// connection closes or tick returns false.
func (c *conn) every(d time.Duration, tick func() bool) {
	var t *time.Timer
	c.timersMu.Lock()
	defer c.timersMu.Unlock()
	if c.stopping {
		return
	}
	t = time.AfterFunc(d, func() {
		if !c.enter() {
			return
		}
		defer c.wg.Done()
		if c.ctx.Err() != nil || !tick() {
			return
		}
		c.timersMu.Lock()
		if !c.stopping {
			t.Reset(d)
		}
		c.timersMu.Unlock()
	})
	c.timers = append(c.timers, t)
}

// keepAliveTick pings the client unless the connection carried a message
// of an operation since the previous tick: traffic keeps intermediaries'
// idle timers alive as well as a ping would, and a busy connection is
// spared one write and one pong per interval. (Pongs to the client's own
// pings do not count: the client may rely on the server's pings.)
func (c *conn) keepAliveTick() bool {
	if c.raw != nil && c.raw.wrote.Swap(false) {
		return true
	}
	return c.send(outbound{Type: msgPing}) == nil
}

func (c *conn) revalidateTick() bool {
	if err := c.revalidate(nil); err != nil {
		c.closeForHookError(err)
		return false
	}
	return true
}

// revalidate runs Transport.Revalidate on the latest connection context and
// keeps the context it returns.
func (c *conn) revalidate(payload map[string]any) error {
	c.revalMu.Lock()
	defer c.revalMu.Unlock()
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("graphqlws: revalidate: %w", err)
	}
	prev := c.session.Context()
	ctx, err := callHook(c.t.Revalidate, prev, payload)
	if err != nil {
		return fmt.Errorf("graphqlws: revalidate: %w", err)
	}
	if ctx != prev {
		c.session.setContext(ctx)
		c.rekey()
		if reason := c.admitClient(ctx); reason != "" {
			c.log.Info("graphqlws: connection refused", "reason", reason)
			c.close(CloseTryAgainLater, reason)
			return errClientCapped
		}
	}
	return nil
}

// hookPanicError is a panic in Authenticate or Revalidate.
type hookPanicError struct{ value any }

func (e *hookPanicError) Error() string { return fmt.Sprintf("graphqlws: hook panicked: %v", e.value) }

func callHook(hook func(context.Context, map[string]any) (context.Context, error), ctx context.Context, payload map[string]any) (out context.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, &hookPanicError{value: r}
		}
	}()
	out, err = hook(ctx, payload)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = ctx
	}
	return out, nil
}

// closeForHookError closes the connection after Authenticate or Revalidate
// failed: 4403, or 4500 when the hook panicked.
func (c *conn) closeForHookError(err error) {
	var p *hookPanicError
	if errors.As(err, &p) {
		c.log.Error("graphqlws: auth hook panicked", "panic", p.value)
		c.close(CloseInternalServerError, "Internal server error")
		return
	}
	if errors.Is(err, errClientCapped) {
		return // closed already, with its own code
	}
	if c.ctx.Err() == nil {
		c.log.Info("graphqlws: credentials rejected", "err", err)
	}
	c.close(CloseForbidden, "Forbidden")
}

func (c *conn) handleSubscribe(msg inbound, start time.Time) bool {
	if !c.acked {
		c.close(CloseUnauthorized, "Unauthorized")
		return false
	}
	// Only the reader adds operations: one that is not running now cannot
	// start before the insertion below.
	c.opsMu.Lock()
	_, dup := c.ops[msg.ID]
	c.opsMu.Unlock()
	if dup {
		c.close(CloseSubscriberAlreadyExists, fmt.Sprintf("Subscriber for %s already exists", msg.ID))
		return false
	}
	if refused, closed := c.allowOperation(); closed {
		return false
	} else if refused != nil {
		return c.send(outbound{ID: msg.ID, Type: msgError, Payload: gqlerror.List{refused}}) == nil
	}
	opCtx, cancel := context.WithCancel(c.ctx)
	op := &operation{id: msg.ID, cancel: cancel}

	c.opsMu.Lock()
	if max := c.t.maxSubscriptions(); len(c.ops) >= max {
		c.opsMu.Unlock()
		cancel()
		err := &gqlerror.Error{
			Message:    fmt.Sprintf("too many operations on this connection (at most %d at once)", max),
			Extensions: map[string]any{"code": ErrorCodeTooManySubscriptions},
		}
		return c.send(outbound{ID: msg.ID, Type: msgError, Payload: gqlerror.List{err}}) == nil
	}
	c.ops[msg.ID] = op
	c.opsMu.Unlock()

	params := &graphql.RawParams{
		Query:         msg.Subscribe.Query,
		OperationName: msg.Subscribe.OperationName,
		Variables:     msg.Subscribe.Variables,
		Extensions:    msg.Subscribe.Extensions,
		Headers:       c.headers,
		ReadTime:      graphql.TraceTiming{Start: start, End: graphql.Now()},
	}
	ctx := context.Context(&liveContext{Context: opCtx, s: c.session})
	c.wg.Add(1)
	go c.runOperation(ctx, op, params)
	return true
}

// stopOperation handles a complete from the client.
func (c *conn) stopOperation(id string) {
	c.opsMu.Lock()
	op := c.ops[id]
	if op != nil {
		delete(c.ops, id)
		op.stopped.Store(true)
	}
	c.opsMu.Unlock()
	if op != nil {
		op.cancel()
	}
}

func (c *conn) runOperation(ctx context.Context, op *operation, params *graphql.RawParams) {
	defer c.wg.Done()
	defer op.cancel()

	ctx = graphql.StartOperationTrace(ctx)
	var rc *graphql.OperationContext
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("graphqlws: operation panicked", "id", op.id, "panic", r)
			c.finish(op, outbound{ID: op.id, Type: msgError, Payload: gqlerror.List{c.presentPanic(ctx, rc, r)}})
		}
	}()

	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if len(errs) > 0 {
		if rc != nil {
			ctx = graphql.WithOperationContext(ctx, rc)
		}
		if resp := c.exec.DispatchError(ctx, errs); resp != nil && len(resp.Errors) > 0 {
			errs = resp.Errors
		}
		c.finish(op, outbound{ID: op.id, Type: msgError, Payload: errs})
		return
	}
	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		release, refused := c.admitSubscription()
		if refused != nil {
			c.finish(op, outbound{ID: op.id, Type: msgError, Payload: gqlerror.List{refused}})
			return
		}
		defer release()
	}

	if key, vkey, cross := c.t.shareKey(ctx, rc); key != "" {
		// The group runs with a snapshot of the leader's credentials and its
		// own cancellation; it ends when its last member leaves. Shared
		// across viewers, it also carries the gate of per-member checks.
		gctx := graphql.StartOperationTrace(context.WithoutCancel(
			&liveContext{Context: ctx, s: frozenSession(c.session)}))
		var next func() (func(subject any) bool, bool)
		if cross {
			gctx, next = c.t.EventGate(gctx)
		}
		gctx, gcancel := context.WithCancel(gctx)
		m, g, created := c.t.join(key, vkey, cross, c, c.session, op, gcancel)
		if created {
			go c.runGroup(gctx, g, rc, next)
		}
		if c.serveMember(ctx, op, m) {
			c.finish(op, outbound{ID: op.id, Type: msgComplete})
		} else {
			c.finish(op, outbound{})
		}
		return
	}

	responses, ctx := c.exec.DispatchOperation(ctx, rc)
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		if err := c.sendOp(op, outbound{ID: op.id, Type: msgNext, Payload: resp}); err != nil {
			if !errors.Is(err, errOpStopped) && !errors.Is(err, errConnClosed) {
				c.log.Warn("graphqlws: sending a result failed", "id", op.id, "err", err)
			}
			c.finish(op, outbound{})
			return
		}
	}
	c.finish(op, outbound{ID: op.id, Type: msgComplete})
}

// finish forgets op, so that its id may be used again, and then sends last
// (its complete or error message) unless it is empty or the client stopped
// the operation.
func (c *conn) finish(op *operation, last outbound) {
	c.opsMu.Lock()
	if c.ops[op.id] == op {
		delete(c.ops, op.id)
	}
	c.opsMu.Unlock()
	if last.Type != "" {
		_ = c.sendOp(op, last)
	}
}

func (c *conn) presentPanic(ctx context.Context, rc *graphql.OperationContext, r any) *gqlerror.Error {
	var err error
	if p, ok := c.exec.(interface {
		PresentRecoveredError(ctx context.Context, err any) error
	}); ok {
		if rc != nil {
			ctx = graphql.WithOperationContext(ctx, rc)
		}
		err = p.PresentRecoveredError(ctx, r)
	}
	var gqlErr *gqlerror.Error
	if errors.As(err, &gqlErr) && gqlErr != nil {
		return gqlErr
	}
	return &gqlerror.Error{Message: "internal system error"}
}

func (c *conn) send(m outbound) error { return c.sendOp(nil, m) }

// sendOp writes m, unless the connection is closing or m belongs to an
// operation that the client stopped.
func (c *conn) sendOp(op *operation, m outbound) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("graphqlws: encode %s message: %w", m.Type, err)
	}
	if err := c.writeOp(op, data); err != nil {
		return fmt.Errorf("graphqlws: write %s message: %w", m.Type, err)
	}
	return nil
}

// tryWriteOp is writeOp without blocking, for broadcasts: it reports
// written (also when nothing may be sent any more: the connection is
// closing or op was stopped), partial (the frame's rest waits in the
// frameConn: flushPartial must run soon) or wouldBlock (nothing was
// written: another write is in progress, or the socket is full).
func (c *conn) tryWriteOp(op *operation, data []byte) writeResult {
	if c.raw == nil || !c.writeMu.TryLock() {
		return wouldBlock
	}
	defer c.writeMu.Unlock()
	if c.closed.Load() || op != nil && op.stopped.Load() {
		return written
	}
	return c.raw.tryWriteText(data)
}

// flushPartial writes the rest of a frame that tryWriteOp left.
func (c *conn) flushPartial() error {
	if c.raw == nil {
		return nil
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.raw.flushPartial(); err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}

// writeFailed closes the socket after a failed write, called with writeMu
// held: a frame may be half written, so the stream is unusable. Closing it
// ends the read loop, and with it the connection.
func (c *conn) writeFailed(err error) {
	if !c.closed.Load() {
		c.log.Info("graphqlws: closing a connection after a failed write (the client does not read?)", "err", err)
	}
	_ = c.ws.CloseNow()
}

// writeOp writes one encoded message, unless the connection is closing or
// it belongs to an operation that the client stopped.
func (c *conn) writeOp(op *operation, data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return errConnClosed
	}
	if op != nil && op.stopped.Load() {
		return errOpStopped
	}
	var err error
	if c.raw != nil {
		err = c.raw.writeText(data)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), c.t.writeTimeout())
		err = c.ws.Write(ctx, websocket.MessageText, data)
		cancel()
	}
	if err == nil && op != nil && c.raw != nil {
		c.raw.wrote.Store(true)
	}
	if err != nil {
		c.writeFailed(err)
	}
	return err
}
