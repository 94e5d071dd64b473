package fanout

import (
	"context"
	"testing"

	"kiln/server/internal/pubsub"
)

func events(s *Sub) []pubsub.Event {
	var out []pubsub.Event
	for len(s.ev) > 0 {
		out = append(out, <-s.ev)
	}
	return out
}

func eq(a, b []pubsub.Event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Overflow and an outage overlap: one EventLost, and EventRestored only
// when both are over.
func TestDownAndOverflow(t *testing.T) {
	h := New(2)
	s, err := h.Add(context.Background(), []string{"t"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := pubsub.Message{Topic: "t"}
	for range 3 {
		h.Deliver(msg, false) // the third overflows
	}
	h.SetDown(true)
	if got := events(s); !eq(got, []pubsub.Event{pubsub.EventLost}) {
		t.Fatalf("events %v, want [lost]", got)
	}
	h.SetDown(false) // still behind
	if got := events(s); len(got) != 0 {
		t.Fatalf("events %v while behind, want none", got)
	}
	<-s.c
	<-s.c
	h.Deliver(msg, false) // caught up
	if got := events(s); !eq(got, []pubsub.Event{pubsub.EventRestored}) {
		t.Fatalf("events %v, want [restored]", got)
	}

	// A subscription made while down starts lost.
	h.SetDown(true)
	s2, _ := h.Add(context.Background(), []string{"t"}, nil)
	if got := events(s2); !eq(got, []pubsub.Event{pubsub.EventLost}) {
		t.Fatalf("new subscription while down: events %v, want [lost]", got)
	}
	h.SetDown(false)
	if got := events(s2); !eq(got, []pubsub.Event{pubsub.EventRestored}) {
		t.Fatalf("events %v, want [restored]", got)
	}
}

func TestReleaseAndClose(t *testing.T) {
	h := New(4)
	released := 0
	s, _ := h.Add(context.Background(), []string{"a", "b", "a"}, func(*Sub) { released++ })
	if got := s.Topics(); len(got) != 2 {
		t.Fatalf("topics %v, want deduplicated", got)
	}
	_ = s.Close()
	_ = s.Close()
	if released != 1 {
		t.Fatalf("release called %d times, want 1", released)
	}
	if len(h.topics) != 0 {
		t.Fatalf("topics left: %v", h.topics)
	}
	// Hub.Close ends subscriptions without calling release.
	s2, _ := h.Add(context.Background(), []string{"a"}, func(*Sub) { released++ })
	h.Close()
	if _, ok := <-s2.C(); ok {
		t.Fatal("C not closed by Hub.Close")
	}
	_ = s2.Close()
	if released != 1 {
		t.Fatalf("release called after Hub.Close")
	}
	if _, err := h.Add(context.Background(), []string{"a"}, nil); err != pubsub.ErrClosed {
		t.Fatalf("Add after Close: %v", err)
	}
}
