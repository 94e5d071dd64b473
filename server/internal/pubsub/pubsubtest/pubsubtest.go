// Package pubsubtest is the conformance suite of pubsub.Bus: every
// implementation runs it from its tests with
//
//	pubsubtest.Run(t, func(t *testing.T) (a, b pubsub.Bus) { ... })
//
// newBus is called once per subtest and returns two handles onto the SAME
// backend (two Buses sharing one Redis, like two server instances; for an
// in-process bus both may be the same value). The suite closes them (Close
// must be idempotent). Every subtest uses topics with a unique prefix, so
// suites may run concurrently against a shared backend. The handles must
// use a per-subscription buffer of at least BufferSize messages: the suite
// publishes up to 1000 messages before reading them.
package pubsubtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln/server/internal/pubsub"
)

// BufferSize is the smallest per-subscription buffer the suite works with.
const BufferSize = 1024

// Wait is how long the suite waits for something that should happen.
const Wait = 5 * time.Second

// Run runs the conformance suite.
func Run(t *testing.T, newBus func(t *testing.T) (a, b pubsub.Bus)) {
	t.Helper()
	open := func(t *testing.T) (pubsub.Bus, pubsub.Bus) {
		t.Helper()
		a, b := newBus(t)
		t.Cleanup(func() {
			_ = a.Close()
			_ = b.Close()
		})
		return a, b
	}
	t.Run("PublishSubscribe", func(t *testing.T) { testPublishSubscribe(t, open) })
	t.Run("SeveralTopics", func(t *testing.T) { testSeveralTopics(t, open) })
	t.Run("TwoHandlesShareBackend", func(t *testing.T) { testTwoHandles(t, open) })
	t.Run("PerTopicOrder", func(t *testing.T) { testOrder(t, open) })
	t.Run("CloseStopsDelivery", func(t *testing.T) { testCloseSub(t, open) })
	t.Run("ContextCancelEndsSubscription", func(t *testing.T) { testCtxCancel(t, open) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, open) })
	t.Run("NoCrossTopicLeakage", func(t *testing.T) { testNoLeak(t, open) })
	t.Run("SlowSubscriberDoesNotBlock", func(t *testing.T) { testSlow(t, open) })
	t.Run("BusCloseEndsSubscriptions", func(t *testing.T) { testBusClose(t, open) })
	t.Run("NoGoroutineLeak", func(t *testing.T) { testGoroutines(t, open) })
}

type opener func(t *testing.T) (a, b pubsub.Bus)

// Prefix returns a topic prefix unique to this test run and test, so that
// runs sharing a backend do not see each other's messages.
func Prefix(t *testing.T) string {
	return fmt.Sprintf("kiln-test:%d:%08x:%s:", os.Getpid(), rand.Uint32(), t.Name())
}

// Recv returns the next message of s, failing the test if none arrives
// within Wait or C is closed.
func Recv(t *testing.T, s pubsub.Subscription) pubsub.Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatal("subscription channel closed, want a message")
		}
		return m
	case <-time.After(Wait):
		t.Fatalf("no message within %v", Wait)
	}
	panic("unreachable")
}

// ExpectNone fails if s delivers a message within d.
func ExpectNone(t *testing.T, s pubsub.Subscription, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if ok {
			t.Fatalf("unexpected message %q on %q", m.Data, m.Topic)
		}
	case <-time.After(d):
	}
}

// ExpectEvent waits up to timeout for the next event of s and fails unless
// it is want. It returns how long it waited.
func ExpectEvent(t *testing.T, s pubsub.Subscription, want pubsub.Event, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("events channel closed, want %v", want)
		}
		if ev != want {
			t.Fatalf("event %v, want %v", ev, want)
		}
	case <-time.After(timeout):
		t.Fatalf("no %v event within %v", want, timeout)
	}
	return time.Since(start)
}

// ExpectClosed fails unless C and Events of s are closed within Wait
// (messages still buffered are drained).
func ExpectClosed(t *testing.T, s pubsub.Subscription) {
	t.Helper()
	deadline := time.After(Wait)
	for {
		select {
		case _, ok := <-s.C():
			if !ok {
				select {
				case _, ok := <-s.Events():
					for ok { // drain buffered events
						_, ok = <-s.Events()
					}
				case <-deadline:
					t.Fatal("Events not closed after C was")
				}
				return
			}
		case <-deadline:
			t.Fatalf("subscription channel not closed within %v", Wait)
		}
	}
}

// Subscribe subscribes and registers Close as cleanup.
func Subscribe(t *testing.T, bus pubsub.Bus, topics ...string) pubsub.Subscription {
	t.Helper()
	s, err := bus.Subscribe(context.Background(), topics...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topics, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Publish publishes and fails the test on error.
func Publish(t *testing.T, bus pubsub.Bus, topic, data string) {
	t.Helper()
	if err := bus.Publish(context.Background(), topic, []byte(data)); err != nil {
		t.Fatalf("Publish(%q): %v", topic, err)
	}
}

func expectMsg(t *testing.T, s pubsub.Subscription, topic, data string) {
	t.Helper()
	m := Recv(t, s)
	if m.Topic != topic || string(m.Data) != data {
		t.Fatalf("got %q on %q, want %q on %q", m.Data, m.Topic, data, topic)
	}
}

func testPublishSubscribe(t *testing.T, open opener) {
	a, _ := open(t)
	topic := Prefix(t) + "t"
	s := Subscribe(t, a, topic)
	buf := []byte("hello")
	before := time.Now()
	if err := a.Publish(context.Background(), topic, buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the bus must not keep the caller's buffer
	Publish(t, a, topic, "")
	Publish(t, a, topic, "kiln1 1\nnot an envelope of the bus's own")
	Publish(t, a, topic, "\x00binary\xff")
	m := Recv(t, s)
	if m.Topic != topic || string(m.Data) != "hello" {
		t.Fatalf("got %q on %q, want %q on %q", m.Data, m.Topic, "hello", topic)
	}
	// The publish time travels with the message (same clock here).
	if m.Published.Before(before.Add(-time.Millisecond)) || m.Published.After(time.Now()) {
		t.Fatalf("Published = %v, want between %v and now", m.Published, before)
	}
	expectMsg(t, s, topic, "")
	expectMsg(t, s, topic, "kiln1 1\nnot an envelope of the bus's own")
	expectMsg(t, s, topic, "\x00binary\xff")
	ExpectNone(t, s, 50*time.Millisecond)
	select {
	case ev := <-s.Events():
		t.Fatalf("unexpected event %v", ev)
	default:
	}
}

func testSeveralTopics(t *testing.T, open opener) {
	a, _ := open(t)
	p := Prefix(t)
	t1, t2, t3 := p+"one", p+"two", p+"three"
	s := Subscribe(t, a, t1, t2, t1) // duplicates count once
	only2 := Subscribe(t, a, t2)
	Publish(t, a, t3, "x") // nobody listens
	Publish(t, a, t1, "a")
	Publish(t, a, t2, "b")
	Publish(t, a, t1, "c")
	expectMsg(t, s, t1, "a")
	expectMsg(t, s, t2, "b")
	expectMsg(t, s, t1, "c")
	expectMsg(t, only2, t2, "b")
	ExpectNone(t, s, 50*time.Millisecond)
	ExpectNone(t, only2, 10*time.Millisecond)
}

func testTwoHandles(t *testing.T, open opener) {
	a, b := open(t)
	topic := Prefix(t) + "shared"
	sa := Subscribe(t, a, topic)
	sb := Subscribe(t, b, topic)
	Publish(t, a, topic, "from a")
	Publish(t, b, topic, "from b")
	for _, s := range []pubsub.Subscription{sa, sb} {
		expectMsg(t, s, topic, "from a")
		expectMsg(t, s, topic, "from b")
	}
	ExpectNone(t, sa, 50*time.Millisecond)
	ExpectNone(t, sb, 10*time.Millisecond)
}

func testOrder(t *testing.T, open opener) {
	a, b := open(t)
	topic := Prefix(t) + "order"
	s := Subscribe(t, b, topic)
	const n = 1000 // below the buffer size: the subscriber reads after the publishes
	for i := range n {
		Publish(t, a, topic, strconv.Itoa(i))
	}
	for i := range n {
		expectMsg(t, s, topic, strconv.Itoa(i))
	}
}

func testCloseSub(t *testing.T, open opener) {
	a, b := open(t)
	topic := Prefix(t) + "close"
	s1 := Subscribe(t, a, topic)
	s2 := Subscribe(t, a, topic)
	Publish(t, b, topic, "1")
	expectMsg(t, s1, topic, "1")
	expectMsg(t, s2, topic, "1")

	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ExpectClosed(t, s1)
	// The other subscription of the same topic is unaffected.
	Publish(t, b, topic, "2")
	expectMsg(t, s2, topic, "2")

	// Last one out, then a new subscription to the same topic works again.
	_ = s2.Close()
	ExpectClosed(t, s2)
	Publish(t, b, topic, "nobody listens")
	s3 := Subscribe(t, a, topic)
	Publish(t, b, topic, "4")
	// A message published before Subscribe was called may or may not be
	// delivered; one published after it returned must be.
	if m := Recv(t, s3); string(m.Data) == "nobody listens" {
		expectMsg(t, s3, topic, "4")
	} else if string(m.Data) != "4" {
		t.Fatalf("got %q, want %q", m.Data, "4")
	}
	ExpectNone(t, s3, 50*time.Millisecond)
}

func testCtxCancel(t *testing.T, open opener) {
	a, b := open(t)
	topic := Prefix(t) + "ctx"
	ctx, cancel := context.WithCancel(context.Background())
	s, err := a.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other := Subscribe(t, a, topic)
	Publish(t, b, topic, "before")
	expectMsg(t, s, topic, "before")
	cancel()
	ExpectClosed(t, s)
	Publish(t, b, topic, "after")
	expectMsg(t, other, topic, "before")
	expectMsg(t, other, topic, "after")

	// A context that is already done is refused.
	if s, err := a.Subscribe(ctx, topic); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe with a cancelled context succeeded")
	}
	// A deadline ends the subscription too.
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	ds, err := a.Subscribe(dctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ExpectClosed(t, ds)
}

func testErrors(t *testing.T, open opener) {
	a, _ := open(t)
	if s, err := a.Subscribe(context.Background()); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe without topics succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Publish(ctx, Prefix(t)+"x", []byte("x")); err == nil {
		t.Fatal("Publish with a cancelled context succeeded")
	}
}

func testNoLeak(t *testing.T, open opener) {
	a, b := open(t)
	p := Prefix(t)
	topics := [2]string{p + "left", p + "right"}
	const total = 10000 // interleaved over both topics, by two publishers
	subs := [2]pubsub.Subscription{Subscribe(t, a, topics[0]), Subscribe(t, b, topics[1])}

	type result struct {
		n   int
		err error
	}
	results := make(chan result, 2)
	var published, received atomic.Int64
	for i, s := range subs {
		go func() {
			var last [2]int // per publisher
			last[0], last[1] = -1, -1
			n := 0
			timeout := time.NewTimer(4 * Wait)
			defer timeout.Stop()
			for n < total/2 {
				select {
				case m, ok := <-s.C():
					if !ok {
						results <- result{n, errors.New("channel closed")}
						return
					}
					if m.Topic != topics[i] {
						results <- result{n, fmt.Errorf("subscriber of %q got a message of %q", topics[i], m.Topic)}
						return
					}
					var pub, seq int
					var tp string
					if _, err := fmt.Sscanf(string(m.Data), "%d %d %s", &pub, &seq, &tp); err != nil || tp != topics[i] {
						results <- result{n, fmt.Errorf("bad payload %q for topic %q", m.Data, topics[i])}
						return
					}
					if seq <= last[pub] {
						results <- result{n, fmt.Errorf("publisher %d: seq %d after %d", pub, seq, last[pub])}
						return
					}
					last[pub] = seq
					n++
					received.Add(1)
				case ev := <-s.Events():
					results <- result{n, fmt.Errorf("unexpected event %v", ev)}
					return
				case <-timeout.C:
					results <- result{n, errors.New("timeout")}
					return
				}
			}
			results <- result{n, nil}
		}()
	}

	var wg sync.WaitGroup
	var pubErr atomic.Value
	for pub, bus := range []pubsub.Bus{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range total / 2 {
				topic := topics[(seq+pub)%2]
				data := fmt.Sprintf("%d %d %s", pub, seq, topic)
				if err := bus.Publish(context.Background(), topic, []byte(data)); err != nil {
					pubErr.Store(err)
					return
				}
				published.Add(1)
				if seq%100 == 99 && !pace(&published, &received) {
					pubErr.Store(errors.New("subscribers stopped reading"))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := pubErr.Load().(error); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("after %d messages: %v", r.n, r.err)
		}
	}
	ExpectNone(t, subs[0], 50*time.Millisecond)
	ExpectNone(t, subs[1], 10*time.Millisecond)
}

func testSlow(t *testing.T, open opener) {
	a, b := open(t)
	topic := Prefix(t) + "slow"
	slow := Subscribe(t, a, topic) // never reads until the end
	fast := Subscribe(t, a, topic)
	const n = 5000 // well above the buffer size (BufferSize)

	got := make(chan error, 1)
	var published, received atomic.Int64
	go func() {
		for i := range n {
			select {
			case m, ok := <-fast.C():
				if !ok {
					got <- errors.New("fast: channel closed")
					return
				}
				if want := strconv.Itoa(i); string(m.Data) != want {
					got <- fmt.Errorf("fast: got %q, want %q", m.Data, want)
					return
				}
				received.Add(1)
			case ev := <-fast.Events():
				got <- fmt.Errorf("fast: unexpected event %v", ev)
				return
			case <-time.After(Wait):
				got <- fmt.Errorf("fast: message %d did not arrive", i)
				return
			}
		}
		got <- nil
	}()
	start := time.Now()
	for i := range n {
		Publish(t, b, topic, strconv.Itoa(i))
		published.Add(1)
		// Keep pace with the fast subscriber only: an in-process publisher
		// is faster than any reader.
		if i%100 == 99 && !pace(&published, &received) {
			t.Fatalf("fast subscriber fell behind (%d published, %d received)", published.Load(), received.Load())
		}
	}
	pubTime := time.Since(start)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Publishing must not have waited for the slow subscriber (generous
	// bound, for slow CI machines and a network backend).
	if pubTime > 4*Wait {
		t.Fatalf("%d publishes took %v", n, pubTime)
	}
	ExpectEvent(t, slow, pubsub.EventLost, Wait)
	select {
	case ev := <-slow.Events():
		t.Fatalf("second event %v while still behind, want a single EventLost", ev)
	default:
	}

	// The slow subscriber got a prefix of the messages, in order, then the
	// drops: it can tell what it missed only by resyncing.
	buffered := len(slow.C())
	if buffered == 0 || buffered >= n {
		t.Fatalf("slow subscriber buffered %d messages, want 0 < n < %d", buffered, n)
	}
	for i := range buffered {
		expectMsg(t, slow, topic, strconv.Itoa(i))
	}
	// Caught up: the next message is delivered and delivery reported restored.
	Publish(t, b, topic, "again")
	expectMsg(t, slow, topic, "again")
	ExpectEvent(t, slow, pubsub.EventRestored, Wait)
}

// pace waits until the readers are at most 300 messages behind the
// publishers, so that a fast reader never overflows its buffer because the
// publishers outrun it. It reports false if they do not catch up in Wait.
func pace(published, received *atomic.Int64) bool {
	deadline := time.Now().Add(Wait)
	for published.Load()-received.Load() > 300 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return true
}

func testBusClose(t *testing.T, open opener) {
	a, b := open(t)
	p := Prefix(t)
	s1 := Subscribe(t, a, p+"one")
	s2 := Subscribe(t, a, p+"one", p+"two")
	var other pubsub.Subscription
	if a != b {
		other = Subscribe(t, b, p+"one")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ExpectClosed(t, s1)
	ExpectClosed(t, s2)
	if err := s1.Close(); err != nil {
		t.Fatalf("subscription Close after bus Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Publish(context.Background(), p+"one", []byte("x")); err == nil {
		t.Fatal("Publish on a closed bus succeeded")
	}
	if s, err := a.Subscribe(context.Background(), p+"one"); err == nil {
		_ = s.Close()
		t.Fatal("Subscribe on a closed bus succeeded")
	}
	if other != nil { // the other instance is unaffected
		Publish(t, b, p+"one", "still here")
		expectMsg(t, other, p+"one", "still here")
	}
}

func testGoroutines(t *testing.T, open opener) {
	a, b := open(t)
	p := Prefix(t)
	// Warm up: lazily started goroutines (connections, timers) are not leaks.
	warm := Subscribe(t, a, p+"warm")
	Publish(t, b, p+"warm", "x")
	expectMsg(t, warm, p+"warm", "x")
	_ = warm.Close()
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()

	const cycles = 1000
	for i := range cycles {
		topic := p + strconv.Itoa(i%10)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := a.Subscribe(ctx, topic, p+"common")
		if err != nil {
			cancel()
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i%100 == 0 {
			Publish(t, b, topic, "m")
			expectMsg(t, s, topic, "m")
		}
		if i%2 == 0 {
			_ = s.Close()
			cancel()
		} else {
			cancel() // ends it through the context
			ExpectClosed(t, s)
		}
	}
	const slack = 5
	deadline := time.Now().Add(Wait)
	after := runtime.NumGoroutine()
	for after > before+slack && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		after = runtime.NumGoroutine()
	}
	if after > before+slack {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines: %d before %d subscribe/close cycles, %d after (slack %d)\n%s",
			before, cycles, after, slack, truncate(buf, 20000))
	}
	// The bus still works.
	s := Subscribe(t, a, p+"0")
	Publish(t, b, p+"0", "end")
	expectMsg(t, s, p+"0", "end")
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "\n..."
	}
	return string(bytes.TrimSpace(b))
}
