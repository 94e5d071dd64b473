package graphqlws

import (
	"context"
	"reflect"
	"sync/atomic"
)

// Session is the state of one graphql-transport-ws connection that
// operations can see: the connection_init payload and the latest connection
// context returned by Transport.Authenticate or Transport.Revalidate.
type Session struct {
	// base is the connection's context before authentication: the request
	// context, cancelled when the connection closes, carrying the Session.
	base context.Context

	// subjectOf is Transport.GateSubject (nil: the context itself).
	subjectOf func(context.Context) any

	initPayload atomic.Pointer[map[string]any]
	current     atomic.Pointer[ctxBox]
}

// ctxBox is a connection context and its gate subject.
type ctxBox struct {
	ctx     context.Context
	subject any
}

type sessionKey struct{}

func newSession(base context.Context, subjectOf func(context.Context) any) *Session {
	s := &Session{subjectOf: subjectOf}
	s.base = context.WithValue(base, sessionKey{}, s)
	s.current.Store(s.box(s.base))
	return s
}

func (s *Session) box(ctx context.Context) *ctxBox {
	if s.subjectOf == nil {
		return &ctxBox{ctx: ctx, subject: ctx}
	}
	return &ctxBox{ctx: ctx, subject: s.subjectOf(ctx)}
}

// gateSubject returns the gate subject of the latest connection context.
func (s *Session) gateSubject() any {
	return s.current.Load().subject
}

// FromContext returns the Session of the connection that runs the operation
// of ctx (or whose Authenticate or Revalidate got ctx).
func FromContext(ctx context.Context) (*Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(*Session)
	return s, ok && s != nil
}

// Context returns the latest connection context: the one returned by the
// last successful Revalidate, else by Authenticate, else the connection's
// base context. It is cancelled when the connection closes.
func (s *Session) Context() context.Context {
	return s.current.Load().ctx
}

// BaseContext returns the connection's context before authentication: the
// request's context, cancelled when the connection closes. Revalidate can
// derive the context it returns from it, rather than from the latest one, to
// keep the chain of a long-lived connection short.
func (s *Session) BaseContext() context.Context {
	return s.base
}

// InitPayload returns the payload of the connection_init message, or nil
// before it arrived or when it had none. Callers must not modify it.
func (s *Session) InitPayload() map[string]any {
	if p := s.initPayload.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Session) setContext(ctx context.Context) {
	if ctx == nil {
		return
	}
	// Keep the Session reachable even from a context that was not derived
	// from the one Authenticate or Revalidate was given.
	if got, _ := ctx.Value(sessionKey{}).(*Session); got != s {
		ctx = context.WithValue(ctx, sessionKey{}, s)
	}
	s.current.Store(s.box(ctx))
}

// liveContext is the root of an operation's context. Its cancellation is the
// operation's own (Context, derived from the session's base context); its
// values are looked up in the session's latest connection context first, so
// that a context switched by Revalidate applies to running operations.
type liveContext struct {
	context.Context
	s *Session
}

func (c *liveContext) Value(key any) any {
	v := c.s.Context().Value(key)
	if v == nil {
		return c.Context.Value(key)
	}
	// A value that the latest context got from the base context (or below)
	// is looked up in the operation's own chain instead, which extends the
	// base: this keeps the operation's cancelCtx, not the connection's, as
	// the one that context.Cause and context.WithCancel find.
	if isSameRef(v, c.s.base.Value(key)) {
		return c.Context.Value(key)
	}
	return v
}

// AfterFunc lets context.AfterFunc and context.WithCancel register on the
// operation's cancellation without a goroutine of their own.
func (c *liveContext) AfterFunc(f func()) func() bool {
	return context.AfterFunc(c.Context, f)
}

// isSameRef reports whether a and b are the same pointer-like value. Values
// of other kinds compare false: they are never the operation's own.
func isSameRef(a, b any) bool {
	if a == nil || b == nil {
		return false
	}
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) {
		return false
	}
	switch ta.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Chan:
		return a == b
	}
	return false
}
