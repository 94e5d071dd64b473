package graphqlws

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Shared subscriptions.
//
// With Transport.ShareKey set, subscription operations that are the same
// (query text, operation name and variables) for viewers that see data the
// same way (the same ShareKey) run ONCE for all of them: a group executes
// the operation, encodes each response once, and delivers the bytes to
// every member: written to the member's socket by the broadcast itself
// when the socket takes them at once (the common case), else queued for
// the member's goroutine (its runOperation), which writes them with a
// blocking write. Events are then authorized, filtered and resolved once
// per group rather than once per subscriber, and the per-subscriber cost is
// one write.
//
// With Transport.ViewerIndependent and EventGate set, an operation whose
// responses do not depend on the viewer (only on whether the viewer may
// read each event's record) is shared by ALL viewers: its group runs once,
// and each response goes to the members whose viewer passes the response's
// check (EventGate), evaluated per member with the gate subject of its
// current connection context. Such a group costs one bus subscription, one
// execution and one encoding per event, and per member one check and one
// write.
//
// A member whose queue is full (its client reads too slowly) leaves the
// group and gets a RESYNC error followed by complete, like a subscription
// that lost events in the pub/sub layer: never a silent loss.

// memberQueue is how many messages a member may have waiting for its
// socket before it is dropped with RESYNC. The queue is a slice that grows
// only while the member is behind.
const memberQueue = 1024

// ErrorCodeResync is the extensions.code of the error that ends a shared
// subscription whose client fell behind, or whose credentials changed to
// another ShareKey: the client should reload and subscribe again.
const ErrorCodeResync = "RESYNC"

// frame is one message of a group for its members: type and encoded payload
// (the id is each member's own).
type frame struct {
	typ     string
	payload []byte
}

// group is one shared execution.
type group struct {
	t      *Transport
	key    string
	cancel context.CancelFunc

	// Guarded by t.shareMu.
	members map[*member]struct{}
	closed  bool
	list    []*member // scratch of broadcast
}

// member is one operation in a group.
type member struct {
	g      *group
	prefix []byte        // `{"id":<id>,"type":"`
	wake   chan struct{} // capacity 1: frames were queued
	done   chan struct{} // closed when the member left the group by no choice of its own

	// c and op are the member's connection and operation, for direct
	// writes from the broadcast (nil c: frames are always queued).
	c  *conn
	op *operation

	mu      sync.Mutex
	pending []*frame // guarded by mu
	// busy is set while a frame of this member is being written outside
	// the queue (a direct write from the broadcast) or frames taken from
	// it are being written (by the member's goroutine): nothing else may
	// be written for the member meanwhile, or frames would reorder.
	busy  bool   // guarded by mu
	final *frame // set before done is closed: the last message, nil for complete
	vkey  string // ShareKey of the viewer when it joined

	// cross is set in a group shared across viewers: each response is
	// checked against the member's current connection context, from sess.
	cross bool
	sess  *Session
}

// resyncFrame is the message that ends a member that fell behind.
var resyncFrame = func() *frame {
	p, _ := json.Marshal(&graphql.Response{Errors: gqlerror.List{{
		Message:    "events may have been missed: reload the data and subscribe again",
		Extensions: map[string]any{"code": ErrorCodeResync},
	}}})
	return &frame{typ: msgNext, payload: p}
}()

// shareKey returns the group key of an operation, or "" when it is not
// shared; cross is set when the group is shared by all viewers.
func (t *Transport) shareKey(ctx context.Context, rc *graphql.OperationContext) (key, vkey string, cross bool) {
	if t.ShareKey == nil || rc == nil || rc.Operation == nil || rc.Operation.Operation != ast.Subscription {
		return "", "", false
	}
	vkey = t.ShareKey(ctx)
	if vkey == "" {
		return "", "", false
	}
	vars, err := json.Marshal(rc.Variables) // map keys are sorted
	if err != nil {
		return "", "", false
	}
	op := rc.OperationName + "\x00" + string(vars) + "\x00" + rc.RawQuery
	if t.ViewerIndependent != nil && t.EventGate != nil && t.ViewerIndependent(rc) {
		// A quoted ShareKey starts with '"': the keys never collide.
		return "*\x00" + op, vkey, true
	}
	return strconv.Quote(vkey) + "\x00" + op, vkey, false
}

// join adds op to the group of key. When there is none, it creates one
// that runs with ctx and cancel (the caller then starts it: created is
// true); otherwise it calls cancel.
func (t *Transport) join(key, vkey string, cross bool, c *conn, sess *Session, op *operation, cancel context.CancelFunc) (m *member, g *group, created bool) {
	id, _ := json.Marshal(op.id)
	m = &member{
		c:      c,
		op:     op,
		prefix: append(append([]byte(`{"id":`), id...), `,"type":"`...),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		vkey:   vkey,
		cross:  cross,
		sess:   sess,
	}
	t.shareMu.Lock()
	if t.groups == nil {
		t.groups = make(map[string]*group)
	}
	g = t.groups[key]
	created = g == nil
	if created {
		g = &group{t: t, key: key, cancel: cancel, members: make(map[*member]struct{})}
		t.groups[key] = g
	}
	m.g = g
	g.members[m] = struct{}{}
	op.member.Store(m)
	t.shareMu.Unlock()
	if !created {
		cancel()
		if t.SharedMembers != nil {
			t.SharedMembers(1)
		}
	}
	return m, g, created
}

// broadcastChunk is the number of members one goroutine of a broadcast
// serves: a group with more members is served by up to GOMAXPROCS
// goroutines at once, each writing to its share of the sockets.
const broadcastChunk = 512

// broadcast delivers f to every member that check allows (nil: every
// member); a member whose queue is full is dropped with RESYNC.
//
// Delivery writes the frame to the member's socket right away when
// nothing of the member is queued or being written and the socket accepts
// it without blocking (the common case: one syscall, no goroutine woken);
// otherwise the frame is queued for the member's goroutine, which writes
// with the usual blocking write and its deadline.
func (g *group) broadcast(f *frame, check func(subject any) bool) {
	g.t.shareMu.Lock()
	defer g.t.shareMu.Unlock()
	list := g.list[:0]
	for m := range g.members {
		list = append(list, m)
	}
	g.list = list
	serve := func(part []*member, buf []byte) (dropped []*member) {
		for _, m := range part {
			if check != nil && !check(m.sess.gateSubject()) {
				continue
			}
			var ok bool
			if ok, buf = m.deliver(f, buf); !ok {
				dropped = append(dropped, m)
			}
		}
		return dropped
	}
	workers := min(runtime.GOMAXPROCS(0), (len(list)+broadcastChunk-1)/broadcastChunk)
	var dropped []*member
	if workers <= 1 {
		dropped = serve(list, make([]byte, 0, 512))
	} else {
		parts := make([][]*member, workers)
		var wg sync.WaitGroup
		per := (len(list) + workers - 1) / workers
		for w := range workers {
			part := list[w*per : min(len(list), (w+1)*per)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				parts[w] = serve(part, make([]byte, 0, 512))
			}()
		}
		wg.Wait()
		for _, p := range parts {
			dropped = append(dropped, p...)
		}
	}
	clear(list) // no references kept between events
	for _, m := range dropped {
		g.dropLocked(m, resyncFrame)
	}
}

// deliver writes f for m without blocking, or queues it; false when the
// queue is full. buf is scratch space, returned for reuse.
func (m *member) deliver(f *frame, buf []byte) (bool, []byte) {
	m.mu.Lock()
	if m.c == nil || len(m.pending) > 0 || m.busy {
		m.mu.Unlock()
		return m.push(f), buf
	}
	m.busy = true
	m.mu.Unlock()
	buf = m.message(buf[:0], f)
	res := m.c.tryWriteOp(m.op, buf)
	m.mu.Lock()
	m.busy = false
	if res == wouldBlock {
		m.pending = append(m.pending, f)
	}
	m.mu.Unlock()
	if res != written {
		m.signal() // write it, or the rest of it
	}
	return true, buf
}

// message appends the member's message for f to buf.
func (m *member) message(buf []byte, f *frame) []byte {
	buf = append(append(append(append(buf, m.prefix...), f.typ...), `","payload":`...), f.payload...)
	return append(buf, '}')
}

// push queues f, or reports false when the queue is full.
func (m *member) push(f *frame) bool {
	m.mu.Lock()
	if len(m.pending) >= memberQueue {
		m.mu.Unlock()
		return false
	}
	m.pending = append(m.pending, f)
	m.mu.Unlock()
	m.signal()
	return true
}

// signal wakes the member's goroutine.
func (m *member) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// take returns the queued frames, in order, and empties the queue; spare
// is reused for the next ones unless it grew large. When it returns
// frames, the member is busy until the caller has written them and called
// release. While a direct write is in progress it returns nothing: the
// broadcast signals again if it queued anything.
func (m *member) take(spare []*frame) []*frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy || len(m.pending) == 0 {
		return nil
	}
	out := m.pending
	if cap(spare) > 64 {
		spare = nil
	}
	m.pending = spare[:0]
	m.busy = true
	return out
}

// release ends the busy state that take began.
func (m *member) release() {
	m.mu.Lock()
	m.busy = false
	m.mu.Unlock()
}

// dropLocked removes m, which ends with final; called with t.shareMu held.
func (g *group) dropLocked(m *member, final *frame) {
	if _, ok := g.members[m]; !ok {
		return
	}
	delete(g.members, m)
	m.final = final
	close(m.done)
	g.afterLeaveLocked()
}

// afterLeaveLocked ends the group when its last member left; called with
// t.shareMu held. Members that leave while others stay are reported to
// SharedMembers.
func (g *group) afterLeaveLocked() {
	if len(g.members) > 0 {
		if g.t.SharedMembers != nil {
			g.t.SharedMembers(-1)
		}
		return
	}
	g.closeLocked()
}

func (g *group) closeLocked() {
	if g.closed {
		return
	}
	g.closed = true
	if g.t.groups[g.key] == g {
		delete(g.t.groups, g.key)
	}
	g.cancel()
}

// leave removes m when its operation ends on its own side (complete from
// the client, connection closed).
func (m *member) leave() {
	g := m.g
	g.t.shareMu.Lock()
	defer g.t.shareMu.Unlock()
	if _, ok := g.members[m]; !ok {
		return
	}
	delete(g.members, m)
	g.afterLeaveLocked()
}

// end finishes the group: every member gets final (nil: complete).
func (g *group) end(final *frame) {
	g.t.shareMu.Lock()
	defer g.t.shareMu.Unlock()
	for m := range g.members {
		delete(g.members, m)
		m.final = final
		close(m.done)
		if len(g.members) > 0 && g.t.SharedMembers != nil {
			g.t.SharedMembers(-1)
		}
	}
	g.closeLocked()
}

// rekey drops the shared members of c whose viewer no longer has the
// ShareKey they joined with (the credentials switched to another viewer):
// they end with RESYNC, and subscribe again as the new viewer. Members of
// groups shared across viewers stay: each response is checked against
// their current viewer.
func (c *conn) rekey() {
	if c.t.ShareKey == nil {
		return
	}
	vkey := c.t.ShareKey(c.session.Context())
	c.opsMu.Lock()
	var stale []*member
	for _, op := range c.ops {
		if m := op.member.Load(); m != nil && !m.cross && m.vkey != vkey {
			stale = append(stale, m)
		}
	}
	c.opsMu.Unlock()
	if len(stale) == 0 {
		return
	}
	c.t.shareMu.Lock()
	defer c.t.shareMu.Unlock()
	for _, m := range stale {
		m.g.dropLocked(m, resyncFrame)
	}
}

// runGroup executes the operation for the group and broadcasts its
// responses, each encoded once. next is the EventGate of a group shared
// across viewers, else nil.
func (c *conn) runGroup(ctx context.Context, g *group, rc *graphql.OperationContext, next func() (func(subject any) bool, bool)) {
	defer g.cancel()
	final := (*frame)(nil)
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("graphqlws: shared operation panicked", "panic", r)
			p, _ := json.Marshal(gqlerror.List{c.presentPanic(ctx, rc, r)})
			final = &frame{typ: msgError, payload: p}
		}
		g.end(final)
	}()
	responses, ctx := c.exec.DispatchOperation(ctx, rc)
	for {
		resp := responses(ctx)
		if resp == nil {
			return
		}
		var check func(subject any) bool // nil: every member
		if next != nil {
			var ok bool
			if check, ok = next(); !ok {
				// No event produced it: an error before the first event
				// goes to everyone, anything with data to nobody.
				if len(resp.Errors) == 0 || !noData(resp.Data) {
					c.log.Error("graphqlws: a response of a subscription shared by viewers has no check: not delivered")
					continue
				}
			}
		}
		p, err := json.Marshal(resp)
		if err != nil {
			c.log.Error("graphqlws: encode a shared result", "err", err)
			continue
		}
		g.broadcast(&frame{typ: msgNext, payload: p}, check)
	}
}

// noData reports whether a response's data is absent or null.
func noData(d json.RawMessage) bool {
	d = bytes.TrimSpace(d)
	return len(d) == 0 || string(d) == "null"
}

// serveMember writes the group's messages for op until the group ends or
// the operation is stopped. It reports whether the operation should end
// with complete (the group completed, or dropped the member with RESYNC).
func (c *conn) serveMember(ctx context.Context, op *operation, m *member) (complete bool) {
	var buf []byte
	write := func(f *frame) bool {
		buf = m.message(buf[:0], f)
		return c.writeOp(op, buf) == nil
	}
	var spare []*frame
	// flush writes the rest of a frame that a direct write left, then the
	// queued frames; false when a write failed.
	flush := func() bool {
		if err := c.flushPartial(); err != nil {
			return false
		}
		fs := m.take(spare)
		if fs == nil {
			return true
		}
		defer m.release()
		for i, f := range fs {
			if !write(f) {
				return false
			}
			fs[i] = nil
		}
		spare = fs
		return true
	}
	// Done once: on an operation's context it walks the chain (liveContext
	// and the values above it), once per event and member otherwise.
	stop := ctx.Done()
	for {
		select {
		case <-m.wake:
			if !flush() {
				m.leave()
				return false
			}
		case <-m.done:
			if !flush() {
				return false
			}
			if m.final == nil {
				return true
			}
			return write(m.final) && m.final.typ == msgNext
		case <-stop:
			m.leave()
			return false
		}
	}
}

// frozenSession returns a copy of s whose connection context stays the
// current one: a group runs with the credentials its leader had when it
// started, whatever happens to the leader's connection later.
func frozenSession(s *Session) *Session {
	f := &Session{base: s.base, subjectOf: s.subjectOf}
	f.current.Store(s.current.Load())
	f.initPayload.Store(s.initPayload.Load())
	return f
}

// shareState is the Transport's registry of groups.
type shareState struct {
	shareMu sync.Mutex
	groups  map[string]*group
}
