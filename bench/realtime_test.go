//go:build linux

package bench

// BenchmarkRealtimeFanout: many WebSocket subscribers on one server, one
// event at a time. Linux only: it reads the server's memory from /proc and
// raises RLIMIT_NOFILE for the client sockets.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	// fanoutQuery is what every subscriber runs.
	fanoutQuery = `subscription { postCreated { id body createdAt } }`
	// fanoutMutation fires one event.
	fanoutMutation = `mutation($a: ID!, $b: String!, $o: ID!) { createPost(input: {authorID: $a, body: $b, ownerID: $o}) { id } }`

	fanoutDialConcurrency = 200              // connections being opened at once
	fanoutDialTimeout     = 30 * time.Second // dial + connection_init + ack + subscribe, per connection
	fanoutOpenTimeout     = 5 * time.Minute  // opening all of them
	fanoutReadyTimeout    = 2 * time.Minute  // until every subscription has received an event
	fanoutRoundTimeout    = 30 * time.Second // one event reaching every subscriber
	fanoutSettle          = time.Second      // before reading the server's memory
	// fanoutFDMargin is added to N for the descriptors a process needs
	// besides the subscriber sockets (listener, SQLite, Redis, HTTP client).
	fanoutFDMargin = 512
)

// fanoutSizes are the sub-benchmarks' subscriber counts; override with
// KILN_BENCH_FANOUT_SUBS=100,2000 (comma-separated).
func fanoutSizes(b *testing.B) []int {
	v := os.Getenv("KILN_BENCH_FANOUT_SUBS")
	if v == "" {
		return []int{1000, 10000}
	}
	var out []int
	for s := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("KILN_BENCH_FANOUT_SUBS: %q is not a positive integer", s)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkRealtimeFanout measures the delivery of subscription events to
// N concurrent graphql-transport-ws subscribers on ONE Kiln server (SQLite),
// with the in-memory fan-out ("memory") and through Redis ("redis": the
// server gets REDIS_URL from KILN_BENCH_REDIS_URL or KILN_TEST_REDIS_URL;
// skipped when neither is set).
//
// Each sub-benchmark starts its own server, seeds one profile, and opens N
// WebSocket connections from this process over loopback (at most
// fanoutDialConcurrency at a time), each authenticated as the admin in
// connection_init and subscribed to postCreated. It then fires probe events
// until every subscription has received one (the protocol does not confirm
// a subscribe), and one more untimed event that all must receive.
//
// Each timed iteration fires ONE event, a createPost mutation over HTTP
// whose body carries the wall-clock time taken just before the request was
// sent, and waits until all N subscribers have received it (failing after
// fanoutRoundTimeout): events are sequential, never overlapping. One reader
// goroutine per connection records, per event, now minus the body's time.
// Use a fixed count: -benchtime 20x. The log line "per event" gives the
// spread of the per-event times and lists the slow events (GC cycles).
//
// Metrics:
//   - min-ms, p50-ms, p99-ms, max-ms: delivery latency over every (event,
//     subscriber) pair of the timed iterations, from just before the
//     mutation is sent to the subscriber's receipt of the event;
//   - deliveries/s: N × events / elapsed time, the events delivered per
//     second in this sequential pattern (ns/op is the time for one event to
//     reach all N subscribers);
//   - KiB/conn: the server's VmRSS (/proc/<pid>/status) after all N are
//     subscribed (plus fanoutSettle), minus before any was opened, over N;
//   - end-KiB/conn: the same after the timed events (plus fanoutSettle),
//     which adds the buffer pages that events have touched and the garbage
//     awaiting the next GC cycle;
//   - heap-KiB/conn, stack-KiB/conn, goroutines/conn: the differences, over
//     N, of the server's go_memstats_heap_inuse_bytes,
//     go_memstats_stack_inuse_bytes and go_goroutines (/metrics) between
//     the same two points as KiB/conn (diagnostics; the heap figure is noisy
//     for small N, as startup garbage may be collected in between);
//   - srv-cpu-us/dlv, cli-cpu-us/dlv: CPU time (user + system) of the server
//     process and of this process (the subscribers) per delivery, during the
//     timed iterations;
//   - other-cpu-%: the share of the machine's CPU time (all cores) used by
//     other processes during the timed iterations (/proc/stat); latencies
//     are only comparable between runs where it is low.
//
// The client side needs N sockets and so does the server: RLIMIT_NOFILE is
// raised to its hard limit before the server starts (a child inherits the
// limits of its parent), and the sub-benchmark is skipped when the hard
// limit is below N + fanoutFDMargin.
func BenchmarkRealtimeFanout(b *testing.B) { benchFanoutBackends(b, false) }

// BenchmarkRealtimeFanoutUsers is BenchmarkRealtimeFanout with N DISTINCT
// viewers: before the memory baseline, the benchmark signs in N anonymous
// users (signInAnonymously: a real account and access token each, without
// password hashing) and each connection authenticates with its own token
// in connection_init ({"accessToken": …}); every subscriber runs the same
// subscription, and the events are public posts, which every user may
// read. This is the realistic mobile case: one connection per user.
func BenchmarkRealtimeFanoutUsers(b *testing.B) { benchFanoutBackends(b, true) }

func benchFanoutBackends(b *testing.B, users bool) {
	sizes := fanoutSizes(b)
	b.Run("memory", func(b *testing.B) {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n, "", users) })
		}
	})
	b.Run("redis", func(b *testing.B) {
		redisURL := os.Getenv("KILN_BENCH_REDIS_URL")
		if redisURL == "" {
			redisURL = os.Getenv("KILN_TEST_REDIS_URL")
		}
		if redisURL == "" {
			b.Skip("Redis fan-out skipped: set KILN_BENCH_REDIS_URL or KILN_TEST_REDIS_URL " +
				"(start a throwaway server with: export KILN_TEST_REDIS_URL=$(.ci/redis.sh start))")
		}
		for _, n := range sizes {
			b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n, redisURL, users) })
		}
	})
}

// benchFanout is one sub-benchmark. It uses b.Loop, so that it runs once:
// the server and the N connections are set up once, outside the timer.
func benchFanout(b *testing.B, n int, redisURL string, users bool) {
	raiseNoFile(b, n)
	bin := kilnBinary(b)
	env := []string{
		"DATABASE_URL=",
		"KILN_DATA_DIR=" + b.TempDir(),
		"KILN_LOG_LEVEL=info",
		"KILN_ADMIN_SECRET=" + benchAdminSecret,
		"REDIS_URL=" + redisURL,
		// Every subscriber dials from 127.0.0.1 and each WebSocket upgrade
		// counts as a request against that address: the per-IP limit
		// (20/s, burst 60) would refuse the 61st connection. Real clients
		// come from many addresses; the mutations are admin requests,
		// which are never limited.
		"KILN_RATE_PER_IP=inf",
		"KILN_RATE_PER_USER=inf",
		// The same for the socket and subscription caps per address.
		"KILN_WS_MAX_CONNECTIONS_PER_IP=0",
		"KILN_WS_MAX_SUBSCRIPTIONS_PER_IP=0",
	}
	if users {
		env = append(env, "KILN_TRUST_PROXY=true")
	}
	srv := startServer(b, bin, []string{"-addr", "127.0.0.1:0"}, env...)
	if lim := processLimit(srv.pid(), "Max open files"); lim != "" {
		b.Logf("server %s", lim)
	}
	f := newFanout(b, srv, n)

	// Untimed setup: the author, and one event with no subscriber, so that
	// the server has run the mutation path once before the baseline.
	f.seedAuthor(b)
	if users {
		f.signInUsers(b)
	}
	f.mutate(b, "warm-up, no subscriber")
	time.Sleep(fanoutSettle)
	mem0 := f.memory(b)

	f.open(b)
	f.waitReady(b)
	f.fire(b) // untimed: every subscription is known to be live
	time.Sleep(fanoutSettle)
	mem1 := f.memory(b)

	srv0, srvOK := processCPU(srv.pid())
	cli0, cliOK := processCPU(os.Getpid())
	busy0, total0, machineOK := machineCPU()
	var lat []int64
	var rounds, mutations []time.Duration // per event: until all N received it; the mutation's round trip
	for b.Loop() {
		t0 := time.Now()
		l, mut := f.fire(b)
		rounds = append(rounds, time.Since(t0))
		mutations = append(mutations, mut)
		lat = append(lat, l...)
	}
	events := len(rounds)
	b.StopTimer()
	srv1, _ := processCPU(srv.pid())
	cli1, _ := processCPU(os.Getpid())
	busy1, total1, _ := machineCPU()
	time.Sleep(fanoutSettle)
	mem2 := f.memory(b)

	slices.Sort(lat)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	deliveries := float64(len(lat))
	b.ReportMetric(ms(lat[0]), "min-ms")
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
	const kib = 1024
	b.ReportMetric((mem1.rss-mem0.rss)/kib/float64(n), "KiB/conn")
	b.ReportMetric((mem2.rss-mem0.rss)/kib/float64(n), "end-KiB/conn")
	b.ReportMetric((mem1.heap-mem0.heap)/kib/float64(n), "heap-KiB/conn")
	b.ReportMetric((mem1.stack-mem0.stack)/kib/float64(n), "stack-KiB/conn")
	b.ReportMetric((mem1.goroutines-mem0.goroutines)/float64(n), "goroutines/conn")
	if srvOK {
		b.ReportMetric(float64((srv1-srv0).Microseconds())/deliveries, "srv-cpu-us/dlv")
	}
	if cliOK {
		b.ReportMetric(float64((cli1-cli0).Microseconds())/deliveries, "cli-cpu-us/dlv")
	}
	if machineOK && srvOK && cliOK && total1 > total0 {
		// The share of the machine's CPU time that other processes used
		// during the timed events: on a shared machine, the figures above
		// are only comparable between runs where it is low.
		other := (busy1 - busy0) - (srv1 - srv0) - (cli1 - cli0)
		b.ReportMetric(max(0, 100*float64(other)/float64(total1-total0)), "other-cpu-%")
	}
	b.Logf("%d subscribers, %d events: server RSS %.1f MiB before the subscribers, %.1f MiB with them, %.1f MiB after the events; %.0f goroutines before, %.0f with them",
		n, events, mem0.rss/kib/kib, mem1.rss/kib/kib, mem2.rss/kib/kib, mem0.goroutines, mem1.goroutines)
	var slow []string // events that took more than 1.5 × the median (GC cycles, mostly)
	sorted := slices.Sorted(slices.Values(rounds))
	nslow := 0
	for i, d := range rounds {
		if d > sorted[len(sorted)/2]*3/2 {
			if nslow++; nslow <= 10 {
				slow = append(slow, fmt.Sprintf("#%d %s", i+1, d.Round(time.Millisecond)))
			}
		}
	}
	if nslow > len(slow) {
		slow = append(slow, fmt.Sprintf("and %d more", nslow-len(slow)))
	}
	slices.Sort(mutations)
	b.Logf("per event: all %d received it after min %s, median %s, max %s (slow events: %v); the createPost round trip took median %s, max %s",
		n, sorted[0].Round(time.Millisecond/10), sorted[len(sorted)/2].Round(time.Millisecond/10), sorted[len(sorted)-1].Round(time.Millisecond/10),
		slow, mutations[len(mutations)/2].Round(time.Millisecond/100), mutations[len(mutations)-1].Round(time.Millisecond/100))
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(len*p/100)
	return sorted[max(i-1, 0)]
}

// raiseNoFile sets RLIMIT_NOFILE's soft limit to its hard limit, or skips b
// when the hard limit is too low for n sockets. The Go runtime raises the
// soft limit of its own process at start but hands children the original
// one, unless the program calls Setrlimit itself: calling it here makes
// the server (started next) inherit the raised limit.
func raiseNoFile(b *testing.B, n int) {
	b.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
	if need := uint64(n + fanoutFDMargin); rl.Max < need {
		b.Skipf("RLIMIT_NOFILE hard limit is %d; %d subscribers need at least %d descriptors in this process and in the server (raise it, e.g. ulimit -Hn, as root)",
			rl.Max, n, need)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Fatal(err)
	}
}

// machineCPU returns the CPU time all processors spent busy and in total
// (busy + idle + iowait) so far, from the first line of /proc/stat.
func machineCPU() (busy, total time.Duration, ok bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	var t [8]int64
	for i := range t {
		if t[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, false
		}
	}
	const userHZ = 100
	tick := time.Second / userHZ
	b := t[0] + t[1] + t[2] + t[5] + t[6] + t[7]
	return time.Duration(b) * tick, time.Duration(b+t[3]+t[4]) * tick, true
}

// processLimit returns the line of /proc/<pid>/limits that starts with
// name, or "".
func processLimit(pid int, name string) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, name) {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

// fanout is the client side of one sub-benchmark: N subscriber connections
// and the events fired at them.
type fanout struct {
	srv      *server
	n        int
	client   *http.Client
	endpoint string
	// tag makes this run's post bodies unique, so that readers ignore
	// posts created by anything else (a shared Redis carries every
	// publisher's kiln:Post:created events).
	tag      string
	bodyKey  []byte // `"body":"<tag> `, what readers look for
	authorID string
	ownerID  string
	// tokens, when set, are the access tokens of N distinct users: the
	// i-th connection authenticates with tokens[i] instead of the admin
	// secret.
	tokens []string

	wsAddr  string // host:port of the server
	conns   []*rawConn
	readers sync.WaitGroup
	closing atomic.Bool

	seq   atomic.Int64 // last event number fired
	ready atomic.Int64 // subscribers that have received an event of this run
	round atomic.Pointer[fanoutRound]

	failOnce sync.Once
	failed   chan struct{} // closed by fail
	failErr  error
}

// fanoutRound is one event awaited by every subscriber.
type fanoutRound struct {
	seq  int64
	lat  []int64      // per subscriber: receipt time minus send time, ns
	got  atomic.Int64 // subscribers that have received it
	done chan struct{}
}

func newFanout(b *testing.B, srv *server, n int) *fanout {
	var r [4]byte
	_, _ = rand.Read(r[:])
	tag := "fanout-" + hex.EncodeToString(r[:])
	f := &fanout{
		srv:      srv,
		n:        n,
		client:   newClient(),
		endpoint: srv.URL + "/graphql",
		wsAddr:   strings.TrimPrefix(srv.URL, "http://"),
		tag:      tag,
		bodyKey:  []byte(`"body":"` + tag + ` `),
		ownerID:  uuid.NewString(),
		conns:    make([]*rawConn, n),
		failed:   make(chan struct{}),
	}
	// Registered after startServer's cleanup, so it runs before it: the
	// sockets are closed before the server is stopped.
	b.Cleanup(f.close)
	return f
}

func (f *fanout) fail(err error) {
	f.failOnce.Do(func() {
		f.failErr = err
		close(f.failed)
	})
}

func (f *fanout) seedAuthor(b *testing.B) {
	b.Helper()
	var out struct{ CreateProfile struct{ ID string } }
	h := "fanout_" + f.tag[len("fanout-"):]
	err := do(context.Background(), f.client, f.endpoint,
		`mutation($h: String!, $e: String!, $d: String!, $o: ID!) { createProfile(input: {handle: $h, email: $e, displayName: $d, ownerID: $o}) { id } }`,
		map[string]any{"h": h, "e": h + "@example.com", "d": "Fan-out Author", "o": f.ownerID}, &out)
	if err != nil {
		b.Fatalf("createProfile: %v", err)
	}
	f.authorID = out.CreateProfile.ID
}

// signInUsers creates N anonymous users, fanoutDialConcurrency/4 at a
// time, and keeps their access tokens for dial.
func (f *fanout) signInUsers(b *testing.B) {
	b.Helper()
	t0 := time.Now()
	f.tokens = make([]string, f.n)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for w := 0; w < min(fanoutDialConcurrency/4, f.n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= f.n {
					return
				}
				var out struct{ SignInAnonymously struct{ AccessToken string } }
				// Each user signs in from its own address, as phones do:
				// the server trusts X-Forwarded-For (KILN_TRUST_PROXY) in
				// this variant, and sign-ins are limited per address.
				ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
				if err := doHeader(context.Background(), f.client, f.endpoint,
					`mutation { signInAnonymously { accessToken } }`, nil, &out,
					http.Header{"X-Forwarded-For": {ip}}); err != nil {
					errOnce.Do(func() { first = fmt.Errorf("signInAnonymously %d: %w", i, err) })
					next.Store(int64(f.n))
					return
				}
				f.tokens[i] = out.SignInAnonymously.AccessToken
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	b.Logf("signed in %d anonymous users in %s", f.n, time.Since(t0).Round(time.Millisecond))
}

// mutate creates a post with body; the event it publishes is what the
// subscribers receive.
func (f *fanout) mutate(b *testing.B, body string) {
	if err := do(context.Background(), f.client, f.endpoint, fanoutMutation,
		map[string]any{"a": f.authorID, "b": body, "o": f.ownerID}, nil); err != nil {
		b.Fatalf("createPost: %v", err)
	}
}

// open dials the N connections, fanoutDialConcurrency at a time, and
// starts one reader goroutine per connection once it is subscribed.
func (f *fanout) open(b *testing.B) {
	b.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), fanoutOpenTimeout)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := 0; w < min(fanoutDialConcurrency, f.n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= f.n || ctx.Err() != nil {
					return
				}
				c, err := f.dial(ctx, i)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("subscriber %d of %d: %w", i, f.n, err) })
					cancel()
					return
				}
				f.conns[i] = c
				f.readers.Add(1)
				go f.read(i, c)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	if err := ctx.Err(); err != nil {
		b.Fatalf("opening %d connections: %v", f.n, err)
	}
	b.Logf("opened %d subscriptions in %s", f.n, time.Since(t0).Round(time.Millisecond))
}

// dial opens one connection: upgrade, connection_init with the admin
// secret, connection_ack, subscribe.
func (f *fanout) dial(ctx context.Context, i int) (*rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, fanoutDialTimeout)
	defer cancel()
	c, err := dialRaw(ctx, f.wsAddr, "/graphql", "graphql-transport-ws")
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close()
		}
	}()
	if d, has := ctx.Deadline(); has {
		_ = c.nc.SetDeadline(d)
	}
	init := `{"type":"connection_init","payload":{"X-Kiln-Admin-Secret":"` + benchAdminSecret + `"}}`
	if f.tokens != nil {
		init = `{"type":"connection_init","payload":{"accessToken":` + strconv.Quote(f.tokens[i]) + `}}`
	}
	if err := c.WriteText([]byte(init)); err != nil {
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	ack, err := c.ReadMessage(nil)
	if err != nil {
		return nil, fmt.Errorf("waiting for connection_ack: %w", err)
	}
	if messageType(ack) != "connection_ack" {
		return nil, fmt.Errorf("want connection_ack, got %.300s", ack)
	}
	sub := `{"id":"1","type":"subscribe","payload":{"query":` + strconv.Quote(fanoutQuery) + `}}`
	if err := c.WriteText([]byte(sub)); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	_ = c.nc.SetDeadline(time.Time{})
	ok = true
	return c, nil
}

// read is subscriber i's reader: it records the latency of the current
// round's event, and fails the run on anything unexpected (rawConn.Loop
// answers pings).
func (f *fanout) read(i int, c *rawConn) {
	defer f.readers.Done()
	seen := false
	var last int64
	err := c.Loop(func(msg []byte) error {
		now := time.Now().UnixNano()
		switch string(messageTypeBytes(msg)) { // no allocation: a conversion in a switch
		case "next":
			seq, ts, ok := f.parseBody(msg)
			if !ok {
				return nil // somebody else's post
			}
			if !seen {
				seen = true
				f.ready.Add(1)
			}
			r := f.round.Load()
			if r == nil || r.seq != seq || last == seq {
				return nil // a probe, or a duplicate
			}
			last = seq
			r.lat[i] = now - ts
			if r.got.Add(1) == int64(f.n) {
				close(r.done)
			}
			return nil
		case "ping":
			return c.WriteText([]byte(`{"type":"pong"}`))
		case "pong":
			return nil
		}
		// error, complete: the subscription ended
		return fmt.Errorf("unexpected message %.300s", msg)
	})
	if !f.closing.Load() {
		f.fail(fmt.Errorf("subscriber %d: %w", i, err))
	}
}

var (
	typeKey = []byte(`"type":"`)
	space   = []byte{' '}
)

// messageType returns the type of a graphql-transport-ws message without
// decoding it (the server writes no space after the colon).
func messageType(msg []byte) string { return string(messageTypeBytes(msg)) }

// messageTypeBytes is messageType, as a slice of msg.
func messageTypeBytes(msg []byte) []byte {
	i := bytes.Index(msg, typeKey)
	if i < 0 {
		return nil
	}
	rest := msg[i+len(typeKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// parseDecimal parses a non-negative decimal integer without allocating.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseBody finds `"body":"<tag> <seq> <unix ns>"` in a next message.
func (f *fanout) parseBody(msg []byte) (seq, ts int64, ok bool) {
	i := bytes.Index(msg, f.bodyKey)
	if i < 0 {
		return 0, 0, false
	}
	rest := msg[i+len(f.bodyKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, 0, false
	}
	a, c, found := bytes.Cut(rest[:end], space)
	if !found {
		return 0, 0, false
	}
	seq, ok1 := parseDecimal(a)
	ts, ok2 := parseDecimal(c)
	return seq, ts, ok1 && ok2
}

// waitReady fires probe events until every subscriber has received one of
// them: from then on, each subscription is registered on the server.
func (f *fanout) waitReady(b *testing.B) {
	b.Helper()
	t0 := time.Now()
	deadline := t0.Add(fanoutReadyTimeout)
	probes := 0
	for f.ready.Load() < int64(f.n) {
		if time.Now().After(deadline) {
			b.Fatalf("after %s and %d probe events, %d of %d subscribers have received one",
				fanoutReadyTimeout, probes, f.ready.Load(), f.n)
		}
		probes++
		f.mutate(b, fmt.Sprintf("%s %d %d", f.tag, f.seq.Add(1), time.Now().UnixNano()))
		// Give the probe up to a second to reach everyone before the next.
		for i := 0; i < 100 && f.ready.Load() < int64(f.n); i++ {
			select {
			case <-f.failed:
				b.Fatal(f.failErr)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	b.Logf("all %d subscriptions live after %d probe event(s), %s", f.n, probes, time.Since(t0).Round(time.Millisecond))
}

// fire sends one event and waits until every subscriber has received it;
// it returns the N latencies in ns, and how long the mutation took.
func (f *fanout) fire(b *testing.B) ([]int64, time.Duration) {
	r := &fanoutRound{seq: f.seq.Add(1), lat: make([]int64, f.n), done: make(chan struct{})}
	f.round.Store(r)
	t0 := time.Now()
	f.mutate(b, fmt.Sprintf("%s %d %d", f.tag, r.seq, t0.UnixNano()))
	mut := time.Since(t0)
	timer := time.NewTimer(fanoutRoundTimeout)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.lat, mut
	case <-f.failed:
		b.Fatal(f.failErr)
	case <-timer.C:
		b.Fatalf("event %d: only %d of %d subscribers received it within %s", r.seq, r.got.Load(), f.n, fanoutRoundTimeout)
	}
	return nil, 0
}

// serverMemory is what memory() reads from the server.
type serverMemory struct {
	rss, heap, stack float64 // bytes
	goroutines       float64
}

func (f *fanout) memory(b *testing.B) serverMemory {
	b.Helper()
	rss, err := vmRSS(f.srv.pid())
	if err != nil {
		b.Fatal(err)
	}
	return serverMemory{
		rss:        rss,
		heap:       metric(b, f.client, f.srv.URL, "go_memstats_heap_inuse_bytes"),
		stack:      metric(b, f.client, f.srv.URL, "go_memstats_stack_inuse_bytes"),
		goroutines: metric(b, f.client, f.srv.URL, "go_goroutines"),
	}
}

// vmRSS reads a process's resident set size from /proc/<pid>/status.
func vmRSS(pid int) (float64, error) {
	fh, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %q: %w", pid, v, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line in /proc/" + strconv.Itoa(pid) + "/status")
}

// close closes every connection (without a close handshake: the server
// sees EOF) and waits for the readers, boundedly.
func (f *fanout) close() {
	f.closing.Store(true)
	for _, c := range f.conns {
		if c != nil {
			_ = c.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		f.readers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
	}
	f.client.CloseIdleConnections()
}
