package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// PushConfig configures push notifications: APNs when its key is set, FCM
// when its service account is; neither: push is off.
type PushConfig struct {
	// APNsKey is the .p8 key (KILN_PUSH_APNS_KEY_FILE), with its id and
	// the team's (KILN_PUSH_APNS_KEY_ID, KILN_PUSH_APNS_TEAM_ID).
	APNsKey               []byte
	APNsKeyID, APNsTeamID string
	// APNsEndpoint is KILN_PUSH_APNS_ENDPOINT ("production", "sandbox" or
	// a URL).
	APNsEndpoint string
	// FCMServiceAccount is the service account's JSON key
	// (KILN_PUSH_FCM_CREDENTIALS_FILE); FCMProjectID overrides its
	// project_id (KILN_PUSH_FCM_PROJECT_ID).
	FCMServiceAccount []byte
	FCMProjectID      string
	// FCMEndpoint and FCMTokenURL override Google's (KILN_PUSH_FCM_ENDPOINT,
	// KILN_PUSH_FCM_TOKEN_URL).
	FCMEndpoint, FCMTokenURL string
	// CAFile adds trusted CA certificates for the push endpoints
	// (KILN_PUSH_CA_FILE).
	CAFile string
	// Concurrency bounds the requests in flight per platform and instance
	// (KILN_PUSH_CONCURRENCY, default 32).
	Concurrency int
}

func (p *PushConfig) load(get func(string) string) error {
	var errs []error
	if f := get("KILN_PUSH_APNS_KEY_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("KILN_PUSH_APNS_KEY_FILE: %w", err))
		}
		p.APNsKey = b
		p.APNsKeyID, p.APNsTeamID = get("KILN_PUSH_APNS_KEY_ID"), get("KILN_PUSH_APNS_TEAM_ID")
		if p.APNsKeyID == "" || p.APNsTeamID == "" {
			errs = append(errs, errors.New("KILN_PUSH_APNS_KEY_FILE needs KILN_PUSH_APNS_KEY_ID and KILN_PUSH_APNS_TEAM_ID"))
		}
	}
	switch e := get("KILN_PUSH_APNS_ENDPOINT"); e {
	case "", "production":
		p.APNsEndpoint = "https://api.push.apple.com"
	case "sandbox":
		p.APNsEndpoint = "https://api.sandbox.push.apple.com"
	default:
		p.APNsEndpoint = e
	}
	if f := get("KILN_PUSH_FCM_CREDENTIALS_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("KILN_PUSH_FCM_CREDENTIALS_FILE: %w", err))
		}
		p.FCMServiceAccount = b
	}
	p.FCMProjectID, p.FCMEndpoint, p.FCMTokenURL = get("KILN_PUSH_FCM_PROJECT_ID"), get("KILN_PUSH_FCM_ENDPOINT"), get("KILN_PUSH_FCM_TOKEN_URL")
	p.CAFile = get("KILN_PUSH_CA_FILE")
	n, err := strconv.Atoi(get("KILN_PUSH_CONCURRENCY"))
	if err != nil || n < 1 {
		errs = append(errs, fmt.Errorf("KILN_PUSH_CONCURRENCY must be a positive integer, got %q", get("KILN_PUSH_CONCURRENCY")))
	}
	p.Concurrency = n
	return errors.Join(errs...)
}
