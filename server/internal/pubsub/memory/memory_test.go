package memory_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"kiln/server/internal/pubsub"
	"kiln/server/internal/pubsub/memory"
	"kiln/server/internal/pubsub/pubsubtest"
)

func TestConformance(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) (pubsub.Bus, pubsub.Bus) {
		b := memory.New(memory.WithBufferSize(pubsubtest.BufferSize))
		return b, b
	})
}

// A subscriber that never reads its events is not a problem: they are
// coalesced, and the last one is the current state.
func TestEventsCoalesce(t *testing.T) {
	bus := memory.New(memory.WithBufferSize(2))
	defer bus.Close()
	s := pubsubtest.Subscribe(t, bus, "t")
	ctx := context.Background()
	for range 100 { // overflow, drain, catch up: Lost, Restored, Lost, ...
		for range 3 {
			_ = bus.Publish(ctx, "t", []byte("x"))
		}
		for len(s.C()) > 0 {
			<-s.C()
		}
	}
	_ = bus.Publish(ctx, "t", []byte("x")) // caught up
	var evs []pubsub.Event
	for len(s.Events()) > 0 {
		evs = append(evs, <-s.Events())
	}
	if len(evs) == 0 || evs[0] != pubsub.EventLost || evs[len(evs)-1] != pubsub.EventRestored {
		t.Fatalf("events %v: want EventLost first and EventRestored last", evs)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i] == pubsub.EventRestored && evs[i-1] == pubsub.EventRestored {
			t.Fatalf("events %v: two EventRestored in a row", evs)
		}
	}
}

// TestDefaultBufferOverflow: with the default buffer, a subscriber that
// does not read keeps DefaultBufferSize messages and is told it lost the
// rest (which ends a GraphQL subscription with RESYNC); one message reaches
// every subscriber with the same Memo.
func TestDefaultBufferOverflow(t *testing.T) {
	bus := memory.New()
	defer bus.Close()
	slow := pubsubtest.Subscribe(t, bus, "t")
	other := pubsubtest.Subscribe(t, bus, "t")
	ctx := context.Background()
	for range memory.DefaultBufferSize + 1 {
		if err := bus.Publish(ctx, "t", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	pubsubtest.ExpectEvent(t, slow, pubsub.EventLost, pubsubtest.Wait)
	if n := len(slow.C()); n != memory.DefaultBufferSize {
		t.Fatalf("buffered %d, want %d", n, memory.DefaultBufferSize)
	}
	a, b := <-slow.C(), <-other.C()
	if a.Memo == nil || a.Memo != b.Memo {
		t.Fatalf("memos %p and %p: want one, shared", a.Memo, b.Memo)
	}
	calls := 0
	for _, m := range []pubsub.Message{a, b} {
		if v := m.Memo.Do(func() any { calls++; return calls }); v != 1 {
			t.Fatalf("memo value %v, want 1", v)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	bus := memory.New()
	defer bus.Close()
	ctx := context.Background()
	for range 10 {
		s, _ := bus.Subscribe(ctx, "t")
		go func() {
			for range s.C() {
			}
		}()
	}
	data := []byte("payload")
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.Publish(ctx, "t", data)
	}
}

// Publishers, subscribers, Close and ctx cancellation all at once: no
// panic (send on a closed channel), no race, no deadlock.
func TestConcurrentChurn(t *testing.T) {
	bus := memory.New(memory.WithBufferSize(8))
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() { // publisher
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = bus.Publish(ctx, "t"+strconv.Itoa(n%3), []byte("x"))
			}
		}()
		go func() { // subscriber churn
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				sctx, cancel := context.WithCancel(ctx)
				s, err := bus.Subscribe(sctx, "t0", "t"+strconv.Itoa((n+i)%3))
				if err != nil {
					cancel()
					return // bus closed
				}
				for range n % 5 {
					select {
					case <-s.C():
					case <-s.Events():
					default:
					}
				}
				if n%2 == 0 {
					cancel()
				} else {
					_ = s.Close()
					cancel()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	_ = bus.Close() // while everything runs
	close(stop)
	wg.Wait()
}
