package ratelimit

import (
	"context"
	"sync"
	"testing"
)

func TestSlots(t *testing.T) {
	s := NewSlots(2)
	if !s.Acquire("a") || !s.Acquire("a") {
		t.Fatal("the first two slots of a were refused")
	}
	if s.Acquire("a") {
		t.Fatal("a third slot of a was granted")
	}
	if !s.Acquire("b") {
		t.Fatal("b is refused because of a")
	}
	s.Release("a")
	if !s.Acquire("a") {
		t.Fatal("a released slot was not reusable")
	}
	for range 3 {
		if !s.Acquire("") {
			t.Fatal("the empty key was refused")
		}
	}
	s.Release("a")
	s.Release("a")
	s.Release("b")
	s.Release("a") // more releases than acquisitions: no negative count
	if n := len(s.held); n != 0 {
		t.Fatalf("%d keys remembered after every slot was released", n)
	}
	var none *Slots
	if !none.Acquire("x") || !NewSlots(0).Acquire("x") {
		t.Fatal("a nil or uncapped Slots refused")
	}
}

func TestSlotsConcurrent(t *testing.T) {
	s := NewSlots(10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.Acquire("k") {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 10 || s.Held("k") != 10 {
		t.Fatalf("granted %d, held %d, want 10", granted, s.Held("k"))
	}
}

func TestClientSlots(t *testing.T) {
	c := ClientSlots{IP: NewSlots(3), User: NewSlots(2)}
	for range 2 {
		if r := c.Acquire("192.0.2.1", "u1"); r != RefusedNone {
			t.Fatalf("refused %q", r)
		}
	}
	if r := c.Acquire("192.0.2.1", "u1"); r != RefusedUser {
		t.Fatalf("the user's third: %q, want %q", r, RefusedUser)
	}
	if got := c.IP.Held(IPKey("192.0.2.1")); got != 2 {
		t.Fatalf("a refusal for the user kept the address's slot: %d held", got)
	}
	if r := c.Acquire("192.0.2.1", "u2"); r != RefusedNone {
		t.Fatalf("refused %q", r)
	}
	// IPv6 addresses count by /64.
	c6 := ClientSlots{IP: NewSlots(1)}
	if c6.Acquire("2001:db8::1", "") != RefusedNone || c6.Acquire("2001:db8::2", "") != RefusedIP {
		t.Fatal("two addresses of one /64 were counted apart")
	}
	if r := c.Acquire("192.0.2.1", "u3"); r != RefusedIP {
		t.Fatalf("the address's fourth: %q, want %q", r, RefusedIP)
	}
	c.Release("192.0.2.1", "u2")
	if r := c.Acquire("192.0.2.1", "u3"); r != RefusedNone {
		t.Fatalf("after a release: %q", r)
	}
}

func TestAllowRequest(t *testing.T) {
	l := Memory(Limits{PerIP: 0.001, IPBurst: 3, PerUser: 0.001, UserBurst: 2})
	ctx := context.Background()
	for i := range 2 {
		if ok, _ := l.AllowRequest(ctx, "192.0.2.1", "u"); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	if ok, wait := l.AllowRequest(ctx, "192.0.2.1", "u"); ok || wait <= 0 {
		t.Fatalf("the user's third request: ok %v, wait %v", ok, wait)
	}
	// The address's budget was spent by those three requests.
	if ok, _ := l.AllowRequest(ctx, "192.0.2.1", ""); ok {
		t.Fatal("the address's fourth request was allowed")
	}
	if ok, _ := l.AllowRequest(ctx, "192.0.2.1", Admin); !ok {
		t.Fatal("an admin request was limited")
	}
	if ok, _ := l.AllowRequest(ctx, "", ""); !ok {
		t.Fatal("a request without keys was limited")
	}
}
