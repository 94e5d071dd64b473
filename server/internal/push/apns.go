package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"kiln/runtime/push"
)

// APNs endpoints.
const (
	APNsProduction = "https://api.push.apple.com"
	APNsSandbox    = "https://api.sandbox.push.apple.com"
)

// apnsTokenLife is how long a provider token is reused: Apple rejects
// tokens older than an hour and refreshes more often than every 20 minutes.
const apnsTokenLife = 50 * time.Minute

// APNsConfig configures the APNs client.
type APNsConfig struct {
	// KeyID is the .p8 key's id, TeamID the Apple developer team's.
	KeyID, TeamID string
	// Key is the .p8 key (PEM, PKCS #8 EC P-256).
	Key []byte
	// Endpoint is APNsProduction, APNsSandbox or a test server.
	Endpoint string
	// Client sends the requests (HTTP/2); nil for one of its own.
	Client *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// APNs sends notifications to iOS devices through Apple's HTTP/2 API.
type APNs struct {
	cfg    APNsConfig
	key    *ecdsa.PrivateKey
	client *http.Client

	mu       sync.Mutex
	token    string
	issuedAt time.Time
}

// ParseP8 parses an APNs .p8 key (PKCS #8, EC P-256).
func ParseP8(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("apns key: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("apns key: %w", err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("apns key: a %T, want an EC P-256 key", k)
	}
	return ec, nil
}

// NewAPNs checks cfg and returns the client.
func NewAPNs(cfg APNsConfig) (*APNs, error) {
	if cfg.KeyID == "" || cfg.TeamID == "" {
		return nil, errors.New("apns: the key id and team id are required")
	}
	key, err := ParseP8(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = APNsProduction
	}
	if _, err := url.Parse(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("apns endpoint: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}}
	}
	return &APNs{cfg: cfg, key: key, client: c}, nil
}

// providerToken returns the ES256 JWT, reused until it is apnsTokenLife
// old; stale forces a new one (Apple said ExpiredProviderToken).
func (a *APNs) providerToken(stale string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	if a.token != "" && a.token != stale && now.Sub(a.issuedAt) < apnsTokenLife {
		return a.token, nil
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": a.cfg.TeamID, "iat": now.Unix()})
	t.Header["kid"] = a.cfg.KeyID
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("apns provider token: %w", err)
	}
	a.token, a.issuedAt = s, now
	return s, nil
}

// apnsPayload is the JSON body: aps and the app's data next to it.
func apnsPayload(n push.Notification) ([]byte, error) {
	aps := map[string]any{}
	if n.Silent {
		aps["content-available"] = 1
	} else {
		alert := map[string]string{}
		if n.Title != "" {
			alert["title"] = n.Title
		}
		if n.Body != "" {
			alert["body"] = n.Body
		}
		aps["alert"] = alert
		if n.Sound != "" {
			aps["sound"] = n.Sound
		}
	}
	if n.Badge != nil {
		aps["badge"] = *n.Badge
	}
	body := map[string]any{}
	for k, v := range n.Data {
		body[k] = v
	}
	body["aps"] = aps
	return json.Marshal(body)
}

// Send sends m to one device.
func (a *APNs) Send(ctx context.Context, m Message) Result {
	now := a.cfg.Now()
	if m.ttl(now) < 0 {
		return Result{Outcome: Failed, Reason: "expired"}
	}
	expiry := m.Expires
	if expiry.IsZero() && m.TTL > 0 {
		expiry = now.Add(m.TTL)
	}
	body, err := apnsPayload(m.Notification)
	if err != nil {
		return Result{Outcome: Failed, Reason: err.Error()}
	}
	if len(body) > maxPayload {
		return Result{Outcome: Failed, Reason: fmt.Sprintf("%v: %d bytes, APNs takes %d", ErrTooLarge, len(body), maxPayload)}
	}
	stale := ""
	for range 2 { // once more with a new provider token after ExpiredProviderToken
		tok, err := a.providerToken(stale)
		if err != nil {
			return Result{Outcome: Retry, Reason: err.Error()}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Endpoint+"/3/device/"+url.PathEscape(m.Token), bytes.NewReader(body))
		if err != nil {
			return Result{Outcome: Failed, Reason: err.Error()}
		}
		h := req.Header
		h.Set("authorization", "bearer "+tok)
		h.Set("content-type", "application/json")
		h.Set("apns-topic", m.AppID)
		if m.Silent {
			h.Set("apns-push-type", "background")
			h.Set("apns-priority", "5") // Apple requires 5 for background pushes
		} else {
			h.Set("apns-push-type", "alert")
			h.Set("apns-priority", map[bool]string{true: "5", false: "10"}[m.Priority == push.Normal])
		}
		if m.CollapseID != "" {
			h.Set("apns-collapse-id", m.CollapseID)
		}
		if !expiry.IsZero() {
			h.Set("apns-expiration", strconv.FormatInt(expiry.Unix(), 10))
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return transient(ctx, err)
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		var e struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(raw, &e)
		switch {
		case resp.StatusCode == http.StatusGone || (resp.StatusCode == http.StatusBadRequest && e.Reason == "BadDeviceToken"):
			return Result{Outcome: Dead, Status: resp.StatusCode, Reason: e.Reason}
		case resp.StatusCode == http.StatusForbidden && e.Reason == "ExpiredProviderToken" && stale == "":
			stale = tok
			continue
		}
		return byStatus(resp.StatusCode, e.Reason, resp.Header, a.cfg.Now())
	}
	return Result{Outcome: Retry, Status: http.StatusForbidden, Reason: "ExpiredProviderToken"}
}
