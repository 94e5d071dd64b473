package kilntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// PushAnswer is how a fake push service answers one request for a token.
type PushAnswer struct {
	Status int
	// Reason is APNs' reason, or FCM's errorCode.
	Reason string
	// RetryAfter is sent as Retry-After (seconds) when set.
	RetryAfter int
}

// PushRequest is a request a fake push service accepted (answered 2xx).
type PushRequest struct {
	Token   string
	Header  http.Header
	Payload map[string]any
	Size    int
}

// pushFake is what both fakes share: the scripted answers per token, the
// accepted requests and the requirement violations seen.
type pushFake struct {
	srv        *httptest.Server
	mu         sync.Mutex
	script     map[string][]PushAnswer
	accepted   []PushRequest
	attempts   map[string]int
	violations []string
	down       bool
}

// SetDown makes the fake answer every request 503 with Retry-After: 1
// (an outage), or serve again.
func (f *pushFake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Answer queues answers for token, used in turn by its next requests
// (then 200).
func (f *pushFake) Answer(token string, answers ...PushAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[token] = append(f.script[token], answers...)
}

// Accepted returns the requests answered 2xx, in order.
func (f *pushFake) Accepted() []PushRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PushRequest(nil), f.accepted...)
}

// Attempts returns how many requests came for token.
func (f *pushFake) Attempts(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[token]
}

// Violations returns the requirements of the real service that requests
// broke (each also answered with the service's error).
func (f *pushFake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// Client trusts the fake's certificate and speaks HTTP/2 to it.
func (f *pushFake) Client() *http.Client { return f.srv.Client() }

// CAFile writes the fake's certificate (PEM) into dir and returns its path,
// for KILN_PUSH_CA_FILE.
func (f *pushFake) CAFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "push-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *pushFake) violate(w http.ResponseWriter, status int, reason, what string) {
	f.mu.Lock()
	f.violations = append(f.violations, what)
	f.mu.Unlock()
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
}

// next counts a request for token and returns its scripted answer.
func (f *pushFake) next(token string) PushAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts[token]++
	if f.down {
		return PushAnswer{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable", RetryAfter: 1}
	}
	if q := f.script[token]; len(q) > 0 {
		f.script[token] = q[1:]
		return q[0]
	}
	return PushAnswer{Status: http.StatusOK}
}

func (f *pushFake) accept(r PushRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted = append(f.accepted, r)
}

func startTLS2(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// FakeAPNs is Apple's push API for tests, over HTTP/2 with TLS on loopback.
// It checks what APNs checks: HTTP/2, POST /3/device/<token>, a provider
// token (ES256, kid of its key, iss its team, iat less than an hour old),
// apns-topic, apns-push-type (alert or background), apns-priority,
// apns-expiration, and a JSON payload with aps of at most 4 KB.
type FakeAPNs struct {
	pushFake
	URL, KeyID, TeamID string
	// KeyP8 is the .p8 key (PEM) the provider tokens must be signed with.
	KeyP8 []byte
	key   *ecdsa.PrivateKey
	// Tokens are the distinct provider tokens seen.
	tokens map[string]bool
}

// StartFakeAPNs starts a fake APNs for the test's lifetime.
func StartFakeAPNs(t testing.TB) *FakeAPNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeAPNs{pushFake: pushFake{script: map[string][]PushAnswer{}, attempts: map[string]int{}},
		KeyID: "ABC123DEFG", TeamID: "TEAM123456", key: key, tokens: map[string]bool{},
		KeyP8: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})}
	f.srv = startTLS2(t, http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// ProviderTokens returns how many distinct provider tokens were used.
func (f *FakeAPNs) ProviderTokens() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokens)
}

func (f *FakeAPNs) serve(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		f.violate(w, http.StatusBadRequest, "BadRequest", "not HTTP/2: "+r.Proto)
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if r.Method != http.MethodPost || !ok || token == "" {
		f.violate(w, http.StatusNotFound, "BadPath", r.Method+" "+r.URL.Path)
		return
	}
	raw, _ := strings.CutPrefix(r.Header.Get("authorization"), "bearer ")
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != f.KeyID {
			return nil, fmt.Errorf("kid %v, want %s", t.Header["kid"], f.KeyID)
		}
		return &f.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(f.TeamID), jwt.WithIssuedAt())
	if err != nil || !parsed.Valid {
		f.violate(w, http.StatusForbidden, "InvalidProviderToken", fmt.Sprintf("provider token: %v", err))
		return
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil || time.Since(iat.Time) > time.Hour {
		f.violate(w, http.StatusForbidden, "ExpiredProviderToken", "provider token iat missing or older than an hour")
		return
	}
	f.mu.Lock()
	f.tokens[raw] = true
	f.mu.Unlock()
	h := r.Header
	if h.Get("apns-topic") == "" {
		f.violate(w, http.StatusBadRequest, "MissingTopic", "no apns-topic")
		return
	}
	pt := h.Get("apns-push-type")
	if pt != "alert" && pt != "background" {
		f.violate(w, http.StatusBadRequest, "InvalidPushType", "apns-push-type "+pt)
		return
	}
	if p := h.Get("apns-priority"); p != "10" && p != "5" && p != "" || pt == "background" && p != "5" {
		f.violate(w, http.StatusBadRequest, "BadPriority", "apns-priority "+p+" for "+pt)
		return
	}
	if e := h.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			f.violate(w, http.StatusBadRequest, "BadExpirationDate", "apns-expiration "+e)
			return
		}
	}
	if len(h.Get("apns-collapse-id")) > 64 {
		f.violate(w, http.StatusBadRequest, "BadCollapseId", "apns-collapse-id over 64 bytes")
		return
	}
	body, _ := io.ReadAll(r.Body)
	if len(body) > 4096 {
		f.violate(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("payload of %d bytes", len(body)))
		return
	}
	var payload map[string]any
	if err := json.Unmarshal(body, &payload); err != nil {
		f.violate(w, http.StatusBadRequest, "PayloadEmpty", "payload not JSON")
		return
	}
	if _, ok := payload["aps"].(map[string]any); !ok {
		f.violate(w, http.StatusBadRequest, "PayloadEmpty", "payload without aps")
		return
	}
	a := f.next(token)
	if a.Status >= 300 {
		if a.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(a.RetryAfter))
		}
		w.WriteHeader(a.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{"reason": a.Reason})
		return
	}
	f.accept(PushRequest{Token: token, Header: h.Clone(), Payload: payload, Size: len(body)})
	w.Header().Set("apns-id", "00000000-0000-0000-0000-000000000000")
	w.WriteHeader(a.Status)
}

// FakeFCM is FCM's HTTP v1 API and Google's OAuth2 token endpoint for
// tests, over HTTP/2 with TLS on loopback. The token endpoint checks the
// service account's JWT assertion (RS256, its key, iss the account's
// email, aud the token URL, the FCM scope) and issues access tokens; the
// send endpoint checks the bearer token, the path of the project and the
// message (one token, notification and data strings, android priority and
// ttl).
type FakeFCM struct {
	pushFake
	URL, ProjectID string
	// ServiceAccount is the JSON key file (its token_uri the fake's).
	ServiceAccount []byte
	key            *rsa.PrivateKey
	email          string
	issued         map[string]bool
	// TokenRequests counts the access tokens issued.
	tokenRequests int
}

// StartFakeFCM starts a fake FCM for the test's lifetime.
func StartFakeFCM(t testing.TB) *FakeFCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeFCM{pushFake: pushFake{script: map[string][]PushAnswer{}, attempts: map[string]int{}},
		ProjectID: "kiln-test", key: key, email: "push@kiln-test.iam.gserviceaccount.com", issued: map[string]bool{}}
	f.srv = startTLS2(t, http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	f.ServiceAccount, _ = json.Marshal(map[string]string{"type": "service_account", "project_id": f.ProjectID,
		"private_key_id": "key1", "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.email, "token_uri": f.URL + "/token"})
	return f
}

// TokenRequests returns how many access tokens the fake issued.
func (f *FakeFCM) TokenRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenRequests
}

func (f *FakeFCM) fcmError(w http.ResponseWriter, status int, code, what string, violation bool, retryAfter int) {
	f.mu.Lock()
	if violation {
		f.violations = append(f.violations, what)
	}
	f.mu.Unlock()
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	statusName := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}[status]
	e := map[string]any{"code": status, "message": what, "status": statusName}
	if code != "" {
		e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (f *FakeFCM) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		f.token(w, r)
		return
	}
	if r.ProtoMajor != 2 {
		f.fcmError(w, 400, "", "not HTTP/2: "+r.Proto, true, 0)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/"+f.ProjectID+"/messages:send" {
		f.fcmError(w, 404, "", "path "+r.Method+" "+r.URL.Path, true, 0)
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	ok := f.issued[bearer]
	f.mu.Unlock()
	if !ok {
		f.fcmError(w, 401, "", "unknown bearer token", true, 0)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Message map[string]any `json:"message"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Message == nil {
		f.fcmError(w, 400, "INVALID_ARGUMENT", "body is not {message}", true, 0)
		return
	}
	token, _ := in.Message["token"].(string)
	if token == "" {
		f.fcmError(w, 400, "INVALID_ARGUMENT", "message without token", true, 0)
		return
	}
	if d, ok := in.Message["data"]; ok {
		m, isMap := d.(map[string]any)
		for _, v := range m {
			if _, s := v.(string); !s {
				isMap = false
			}
		}
		if !isMap {
			f.fcmError(w, 400, "INVALID_ARGUMENT", "data values must be strings", true, 0)
			return
		}
	}
	if a, ok := in.Message["android"].(map[string]any); ok {
		if p, _ := a["priority"].(string); p != "" && p != "HIGH" && p != "NORMAL" {
			f.fcmError(w, 400, "INVALID_ARGUMENT", "android.priority "+p, true, 0)
			return
		}
		if ttl, ok := a["ttl"].(string); ok {
			if _, err := time.ParseDuration(ttl); err != nil || !strings.HasSuffix(ttl, "s") {
				f.fcmError(w, 400, "INVALID_ARGUMENT", "android.ttl "+ttl, true, 0)
				return
			}
		}
	}
	a := f.next(token)
	if a.Status >= 300 {
		f.fcmError(w, a.Status, a.Reason, "scripted", false, a.RetryAfter)
		return
	}
	f.accept(PushRequest{Token: token, Header: r.Header.Clone(), Payload: in.Message, Size: len(body)})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": "projects/" + f.ProjectID + "/messages/1"})
}

func (f *FakeFCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.fcmError(w, 400, "", "token: grant_type", true, 0)
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(f.email), jwt.WithAudience(f.URL+"/token"), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil || !strings.Contains(fmt.Sprint(claims["scope"]), "https://www.googleapis.com/auth/firebase.messaging") {
		f.fcmError(w, 400, "", fmt.Sprintf("token: assertion %v scope %v", err, claims["scope"]), true, 0)
		return
	}
	tok := rand.Text()
	f.mu.Lock()
	f.issued[tok] = true
	f.tokenRequests++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}
