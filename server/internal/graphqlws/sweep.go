package graphqlws

import (
	"context"
	"sync"
	"time"
)

// Periodic revalidation in one call.
//
// With Transport.RevalidateAll set, a connection that has been acknowledged
// joins the transport's sweep instead of arming its own revalidation timer:
// every RevalidateEvery, one call checks every live connection, so the
// check can batch what it reads (one query for the token versions of
// thousands of users rather than one query and one signature check per
// connection). The sweep is a timer that exists only while connections
// do: no goroutine waits between sweeps.

// sweepState is the Transport's registry of connections to revalidate.
type sweepState struct {
	sweepMu    sync.Mutex
	swept      map[*conn]struct{}
	sweepTimer *time.Timer // nil when no connection is registered
}

// track registers c for the sweep.
func (t *Transport) track(c *conn) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if t.swept == nil {
		t.swept = make(map[*conn]struct{})
	}
	t.swept[c] = struct{}{}
	if t.sweepTimer == nil {
		t.sweepTimer = time.AfterFunc(t.revalidateEvery(), t.sweep)
	}
}

// untrack removes c; the timer stops with the last connection.
func (t *Transport) untrack(c *conn) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if _, ok := t.swept[c]; !ok {
		return
	}
	delete(t.swept, c)
	// When Stop fails, the sweep is running: it sees the empty registry
	// when it ends and drops the timer itself.
	if len(t.swept) == 0 && t.sweepTimer != nil && t.sweepTimer.Stop() {
		t.sweepTimer = nil
	}
}

// sweep runs RevalidateAll over every registered connection's latest
// context and closes those it refuses with 4403, then re-arms the timer
// while connections remain.
func (t *Transport) sweep() {
	t.sweepMu.Lock()
	conns := make([]*conn, 0, len(t.swept))
	for c := range t.swept {
		conns = append(conns, c)
	}
	t.sweepMu.Unlock()

	if len(conns) > 0 {
		ctxs := make([]context.Context, len(conns))
		for i, c := range conns {
			ctxs[i] = c.session.Context()
		}
		errs := t.revalidateAll(ctxs)
		for i, c := range conns {
			if i < len(errs) && errs[i] != nil {
				go c.refuse(ctxs[i], errs[i])
			}
		}
	}

	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if len(t.swept) == 0 {
		t.sweepTimer = nil
		return
	}
	t.sweepTimer.Reset(t.revalidateEvery())
}

// revalidateAll calls RevalidateAll; a panic in it refuses no connection
// (it is logged), as the connections' own checks were not at fault.
func (t *Transport) revalidateAll(ctxs []context.Context) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			t.logger().Error("graphqlws: RevalidateAll panicked", "panic", r)
			errs = nil
		}
	}()
	return t.RevalidateAll(ctxs)
}

// refuse closes c after RevalidateAll refused its context checked, unless
// the connection has switched to another context since (a ping with a new
// token): the new one is checked by the next sweep.
func (c *conn) refuse(checked context.Context, err error) {
	if !c.enter() {
		return
	}
	defer c.wg.Done()
	c.revalMu.Lock()
	current := c.session.Context()
	c.revalMu.Unlock()
	if current != checked {
		return
	}
	c.closeForHookError(err)
}
