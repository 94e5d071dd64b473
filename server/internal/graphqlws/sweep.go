package graphqlws

import (
	"context"
	"sync"
	"time"
)

// Periodic revalidation in batches.
//
// With Transport.RevalidateAll set, a connection that has been acknowledged
// joins the transport's sweep instead of arming its own revalidation timer.
// The connections are spread over sweepSlices slices, round robin, and
// every RevalidateEvery/sweepSlices one slice is checked in one call, so
// the check can batch what it reads (one query for the token versions of
// hundreds of users rather than one query and one signature check per
// connection), every connection is checked once per RevalidateEvery, and
// the work is spread evenly over the period rather than done in one burst
// that would delay the events being delivered meanwhile. The sweep is a
// timer that exists only while connections do: no goroutine waits between
// sweeps.

// sweepSlices is the number of slices of the sweep.
const sweepSlices = 16

// sweepState is the Transport's registry of connections to revalidate.
type sweepState struct {
	sweepMu    sync.Mutex
	swept      [sweepSlices]map[*conn]struct{}
	sweptCount int         // connections in swept
	sweepAdd   int         // the slice of the next connection
	sweepNext  int         // the slice of the next sweep
	sweepTimer *time.Timer // nil when no connection is registered
}

// sweepTick is the interval between two sweeps.
func (t *Transport) sweepTick() time.Duration {
	return max(t.revalidateEvery()/sweepSlices, time.Millisecond)
}

// track registers c for the sweep.
func (t *Transport) track(c *conn) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	i := t.sweepAdd
	t.sweepAdd = (t.sweepAdd + 1) % sweepSlices
	if t.swept[i] == nil {
		t.swept[i] = make(map[*conn]struct{})
	}
	t.swept[i][c] = struct{}{}
	c.sweepSlice = i
	t.sweptCount++
	if t.sweepTimer == nil {
		t.sweepTimer = time.AfterFunc(t.sweepTick(), t.sweep)
	}
}

// untrack removes c; the timer stops with the last connection.
func (t *Transport) untrack(c *conn) {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	if _, ok := t.swept[c.sweepSlice][c]; !ok {
		return
	}
	delete(t.swept[c.sweepSlice], c)
	t.sweptCount--
	// When Stop fails, the sweep is running: it sees the empty registry
	// when it ends and drops the timer itself.
	if t.sweptCount == 0 && t.sweepTimer != nil && t.sweepTimer.Stop() {
		t.sweepTimer = nil
	}
}

// sweep runs RevalidateAll over the latest contexts of the connections of
// the next slice and closes those it refuses with 4403, then re-arms the
// timer while connections remain.
func (t *Transport) sweep() {
	t.sweepMu.Lock()
	slice := t.swept[t.sweepNext]
	t.sweepNext = (t.sweepNext + 1) % sweepSlices
	conns := make([]*conn, 0, len(slice))
	for c := range slice {
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
	if t.sweptCount == 0 {
		t.sweepTimer = nil
		return
	}
	t.sweepTimer.Reset(t.sweepTick())
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
