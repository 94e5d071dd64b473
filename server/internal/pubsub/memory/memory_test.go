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
