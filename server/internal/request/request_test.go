package request

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestBearerToken(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "  Bearer   abc  ": "abc", "BEARER a.b.c": "a.b.c",
		"": "", "Bearer": "", "Bearer ": "", "Basic abc": "", "abc": "",
	} {
		got, ok := BearerToken(in)
		if got != want || ok != (want != "") {
			t.Errorf("BearerToken(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestMiddleware(t *testing.T) {
	var got *Info
	h := Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = From(r.Context()) }), false)
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got.ClientIP != "192.0.2.1" || len(got.ID) != 16 || rec.Header().Get("X-Request-Id") != got.ID {
		t.Errorf("untrusted proxy: %+v", got)
	}
	h = Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = From(r.Context()) }), true)
	req.Header.Set("X-Request-Id", "abc")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got.ClientIP != "203.0.113.9" || got.ID != "abc" {
		t.Errorf("trusted proxy: %+v", got)
	}
	if From(t.Context()).ID != "" {
		t.Error("no request: want a zero Info")
	}
}
