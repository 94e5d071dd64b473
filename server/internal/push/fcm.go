package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"kiln/runtime/push"
)

// FCMEndpoint is FCM's HTTP v1 API.
const FCMEndpoint = "https://fcm.googleapis.com"

// fcmScope is the OAuth2 scope of FCM's send API.
const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMConfig configures the FCM client.
type FCMConfig struct {
	// ServiceAccount is the service account's JSON key file (its
	// project_id, client_email, private_key and token_uri).
	ServiceAccount []byte
	// ProjectID overrides the key file's project_id.
	ProjectID string
	// Endpoint is FCMEndpoint or a test server; TokenURL overrides the key
	// file's token_uri (a test server).
	Endpoint, TokenURL string
	// Client sends the requests (HTTP/2), and gets the OAuth2 tokens;
	// nil for one of its own.
	Client *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// FCM sends notifications to Android devices through FCM's HTTP v1 API,
// with a service account's OAuth2 access token, cached and refreshed
// before it expires.
type FCM struct {
	cfg    FCMConfig
	tokens oauth2.TokenSource
	client *http.Client
}

// serviceAccount is the part of a key file FCM needs.
type serviceAccount struct {
	ProjectID    string `json:"project_id"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// NewFCM checks cfg and returns the client.
func NewFCM(cfg FCMConfig) (*FCM, error) {
	var sa serviceAccount
	if err := json.Unmarshal(cfg.ServiceAccount, &sa); err != nil {
		return nil, fmt.Errorf("fcm service account: %w", err)
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, errors.New("fcm service account: client_email and private_key are required")
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = sa.ProjectID
	}
	if cfg.ProjectID == "" {
		return nil, errors.New("fcm: no project id (the key file has no project_id)")
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = sa.TokenURI
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = "https://oauth2.googleapis.com/token"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = FCMEndpoint
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}}
	}
	jc := &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
		Scopes: []string{fcmScope}, TokenURL: cfg.TokenURL}
	// The token's own HTTP client (a test server's TLS trust included).
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c)
	return &FCM{cfg: cfg, client: c, tokens: oauth2.ReuseTokenSource(nil, jc.TokenSource(ctx))}, nil
}

// fcmMessage is the v1 API's message for one token.
type fcmMessage struct {
	Token        string            `json:"token"`
	Notification *fcmNotification  `json:"notification,omitempty"`
	Data         map[string]string `json:"data,omitempty"`
	Android      fcmAndroid        `json:"android"`
}

type fcmNotification struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type fcmAndroid struct {
	Priority     string                  `json:"priority"`
	TTL          string                  `json:"ttl,omitempty"`
	CollapseKey  string                  `json:"collapse_key,omitempty"`
	Notification *fcmAndroidNotification `json:"notification,omitempty"`
}

type fcmAndroidNotification struct {
	Sound             string `json:"sound,omitempty"`
	NotificationCount *int   `json:"notification_count,omitempty"`
}

func fcmPayload(token string, n push.Notification, ttl time.Duration) ([]byte, error) {
	m := fcmMessage{Token: token, Data: n.Data, Android: fcmAndroid{Priority: "HIGH", CollapseKey: n.CollapseID}}
	if n.Priority == push.Normal {
		m.Android.Priority = "NORMAL"
	}
	if ttl > 0 {
		m.Android.TTL = fmt.Sprintf("%ds", int64(ttl/time.Second))
	}
	if !n.Silent {
		m.Notification = &fcmNotification{Title: n.Title, Body: n.Body}
		if n.Sound != "" || n.Badge != nil {
			m.Android.Notification = &fcmAndroidNotification{Sound: n.Sound, NotificationCount: n.Badge}
		}
	}
	return json.Marshal(map[string]any{"message": m})
}

// fcmSize is the size FCM's 4 KB limit counts: the notification's and
// the data's JSON.
func fcmSize(n push.Notification) int {
	a, _ := json.Marshal(fcmNotification{Title: n.Title, Body: n.Body})
	b, _ := json.Marshal(n.Data)
	return len(a) + len(b)
}

// fcmError is the v1 API's error body.
type fcmError struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

// Send sends m to one device.
func (f *FCM) Send(ctx context.Context, m Message) Result {
	ttl := m.ttl(f.cfg.Now())
	if ttl < 0 {
		return Result{Outcome: Failed, Reason: "expired"}
	}
	body, err := fcmPayload(m.Token, m.Notification, ttl)
	if err != nil {
		return Result{Outcome: Failed, Reason: err.Error()}
	}
	if n := fcmSize(m.Notification); n > maxPayload {
		return Result{Outcome: Failed, Reason: fmt.Sprintf("%v: %d bytes of notification and data, FCM takes %d", ErrTooLarge, n, maxPayload)}
	}
	tok, err := f.tokens.Token()
	if err != nil {
		return Result{Outcome: Retry, Reason: "fcm access token: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Endpoint+"/v1/projects/"+f.cfg.ProjectID+"/messages:send", bytes.NewReader(body))
	if err != nil {
		return Result{Outcome: Failed, Reason: err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return transient(ctx, err)
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{Outcome: Sent, Status: resp.StatusCode}
	}
	var e fcmError
	_ = json.Unmarshal(raw, &e)
	reason := e.Error.Status
	for _, d := range e.Error.Details {
		if strings.HasSuffix(d.Type, "google.firebase.fcm.v1.FcmError") && d.ErrorCode != "" {
			reason = d.ErrorCode
		}
	}
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	if resp.StatusCode == http.StatusNotFound || reason == "UNREGISTERED" {
		return Result{Outcome: Dead, Status: resp.StatusCode, Reason: reason}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The access token was refused: retry with whatever the source
		// holds then (a fresh one once this one expires).
		return Result{Outcome: Retry, Status: resp.StatusCode, Reason: reason}
	}
	return byStatus(resp.StatusCode, reason, resp.Header, f.cfg.Now())
}
