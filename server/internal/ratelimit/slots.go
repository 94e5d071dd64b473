package ratelimit

import "sync"

// Slots caps how many things (open sockets, live subscriptions) each key
// may hold at once, in this process. Keys are those of IPKey and UserKey;
// the empty key is never limited nor counted. Safe for concurrent use; a
// key is forgotten when its last slot is released, so memory follows the
// keys that hold something.
type Slots struct {
	max int // <= 0: no cap (nothing is counted)

	mu   sync.Mutex
	held map[string]int
}

// NewSlots returns Slots allowing max holds per key; max <= 0 means no cap.
func NewSlots(max int) *Slots {
	return &Slots{max: max, held: map[string]int{}}
}

// Max returns the cap (<= 0: none).
func (s *Slots) Max() int {
	if s == nil {
		return 0
	}
	return s.max
}

// Acquire takes a slot of key and reports whether it could: false when key
// already holds Max. A nil Slots, a Slots without a cap and the empty key
// always succeed. Each successful Acquire needs one Release of the same key.
func (s *Slots) Acquire(key string) bool {
	if s == nil || s.max <= 0 || key == "" {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[key] >= s.max {
		return false
	}
	s.held[key]++
	return true
}

// Release gives back a slot that Acquire took for key.
func (s *Slots) Release(key string) {
	if s == nil || s.max <= 0 || key == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch n := s.held[key]; {
	case n > 1:
		s.held[key] = n - 1
	case n == 1:
		delete(s.held, key)
	}
}

// Held returns the slots key holds.
func (s *Slots) Held(key string) int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[key]
}

// ClientSlots caps the holds of a client per address and per user.
type ClientSlots struct {
	IP   *Slots // keyed by IPKey
	User *Slots // keyed by UserKey
}

// Which cap refused an acquisition.
const (
	RefusedNone = ""
	RefusedIP   = "ip"
	RefusedUser = "user"
)

// Acquire takes a slot for the client address ip and one for user (an
// empty one is not counted). It returns RefusedNone, or which cap refused
// (RefusedIP or RefusedUser), in which case it holds nothing.
func (c ClientSlots) Acquire(ip, user string) string {
	ipKey, userKey := clientKeys(ip, user)
	if !c.IP.Acquire(ipKey) {
		return RefusedIP
	}
	if !c.User.Acquire(userKey) {
		c.IP.Release(ipKey)
		return RefusedUser
	}
	return RefusedNone
}

// Release gives back what Acquire(ip, user) took.
func (c ClientSlots) Release(ip, user string) {
	ipKey, userKey := clientKeys(ip, user)
	c.IP.Release(ipKey)
	c.User.Release(userKey)
}

func clientKeys(ip, user string) (ipKey, userKey string) {
	if ip != "" {
		ipKey = IPKey(ip)
	}
	if user != "" {
		userKey = UserKey(user)
	}
	return ipKey, userKey
}
