package kilntest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WS is a graphql-transport-ws client connection.
type WS struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	subs   map[string]chan Message
	closed chan struct{}
	// CloseCode is set when the server closes the connection.
	CloseCode websocket.StatusCode
	nextID    int
}

// Message is a server message for one subscription.
type Message struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Dial opens a graphql-transport-ws connection and sends connection_init
// with payload; it fails the test unless the server acknowledges.
func (s *Server) Dial(t testing.TB, payload map[string]any) *WS {
	t.Helper()
	w, err := s.DialE(payload)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// DialE is Dial without a test.
func (s *Server) DialE(payload map[string]any) (*WS, error) {
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(16 << 20)
	w := &WS{conn: conn, ctx: ctx, cancel: cancel, subs: map[string]chan Message{}, closed: make(chan struct{})}
	if err := w.send(Message{Type: "connection_init", Payload: mustJSON(payload)}); err != nil {
		w.Close()
		return nil, err
	}
	var ack Message
	if err := w.read(dctx, &ack); err != nil || ack.Type != "connection_ack" {
		w.Close()
		return nil, fmt.Errorf("no connection_ack (%v, %+v, close %d)", err, ack, websocket.CloseStatus(err))
	}
	go w.loop()
	return w, nil
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

func (w *WS) send(m Message) error {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	return w.conn.Write(ctx, websocket.MessageText, b)
}

func (w *WS) read(ctx context.Context, m *Message) error {
	_, b, err := w.conn.Read(ctx)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, m)
}

func (w *WS) loop() {
	defer close(w.closed)
	for {
		var m Message
		err := w.read(w.ctx, &m)
		if err != nil {
			w.mu.Lock()
			w.CloseCode = websocket.CloseStatus(err)
			for _, ch := range w.subs {
				close(ch)
			}
			w.subs = map[string]chan Message{}
			w.mu.Unlock()
			return
		}
		switch m.Type {
		case "ping":
			_ = w.send(Message{Type: "pong"})
		case "next", "error", "complete":
			w.mu.Lock()
			ch := w.subs[m.ID]
			w.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m:
				case <-w.ctx.Done():
					return
				}
			}
		}
	}
}

// Subscribe starts an operation and returns its messages (next, error,
// complete); the channel is closed when the connection ends.
func (w *WS) Subscribe(t testing.TB, query string, vars map[string]any) <-chan Message {
	t.Helper()
	w.mu.Lock()
	w.nextID++
	id := fmt.Sprint(w.nextID)
	ch := make(chan Message, 100000)
	w.subs[id] = ch
	w.mu.Unlock()
	if err := w.send(Message{Type: "subscribe", ID: id, Payload: mustJSON(map[string]any{"query": query, "variables": vars})}); err != nil {
		t.Fatal(err)
	}
	return ch
}

// Ping sends a ping with a payload (Kiln reads accessToken from it).
func (w *WS) Ping(payload map[string]any) error {
	return w.send(Message{Type: "ping", Payload: mustJSON(payload)})
}

// WaitClosed waits up to d for the server to close the connection and
// returns the close code.
func (w *WS) WaitClosed(d time.Duration) (websocket.StatusCode, error) {
	select {
	case <-w.closed:
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.CloseCode, nil
	case <-time.After(d):
		return 0, errors.New("connection still open")
	}
}

// Close closes the connection.
func (w *WS) Close() {
	_ = w.conn.Close(websocket.StatusNormalClosure, "bye")
	w.cancel()
}

// Next waits up to d for the next message of a subscription.
func Next(ch <-chan Message, d time.Duration) (Message, bool) {
	select {
	case m, ok := <-ch:
		return m, ok
	case <-time.After(d):
		return Message{}, false
	}
}
