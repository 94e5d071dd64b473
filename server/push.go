package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"kiln/runtime/push"
	"kiln/runtime/store"
	"kiln/server/internal/config"
	"kiln/server/internal/jobs"
	ipush "kiln/server/internal/push"
)

// openPush sets up push notifications from the KILN_PUSH_* settings: the
// APNs and FCM senders configured, the delivery jobs on the engine, and
// push.ToUsers; with neither it logs that push is off.
func openPush(cfg config.PushConfig, c *store.Client, engine *jobs.Engine, recipients func(context.Context, []uuid.UUID) ([]uuid.UUID, error), reg prometheus.Registerer, log *slog.Logger) error {
	if cfg.APNsKey == nil && cfg.FCMServiceAccount == nil {
		push.Use(nil)
		log.Info("push notifications off: set KILN_PUSH_APNS_KEY_FILE and/or KILN_PUSH_FCM_CREDENTIALS_FILE to send them")
		return nil
	}
	tr := &http.Transport{ForceAttemptHTTP2: true, MaxIdleConnsPerHost: cfg.Concurrency, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return fmt.Errorf("KILN_PUSH_CA_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("KILN_PUSH_CA_FILE: no PEM certificate in it")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	var apns, fcm ipush.Sender
	var on []string
	if cfg.APNsKey != nil {
		a, err := ipush.NewAPNs(ipush.APNsConfig{KeyID: cfg.APNsKeyID, TeamID: cfg.APNsTeamID, Key: cfg.APNsKey, Endpoint: cfg.APNsEndpoint, Client: client})
		if err != nil {
			return fmt.Errorf("KILN_PUSH_APNS_KEY_FILE: %w", err)
		}
		apns = a
		on = append(on, "apns")
	}
	if cfg.FCMServiceAccount != nil {
		f, err := ipush.NewFCM(ipush.FCMConfig{ServiceAccount: cfg.FCMServiceAccount, ProjectID: cfg.FCMProjectID,
			Endpoint: cfg.FCMEndpoint, TokenURL: cfg.FCMTokenURL, Client: client})
		if err != nil {
			return fmt.Errorf("KILN_PUSH_FCM_CREDENTIALS_FILE: %w", err)
		}
		fcm = f
		on = append(on, "fcm")
	}
	svc := ipush.NewService(c, engine, apns, fcm, cfg.Concurrency, reg, log)
	svc.Recipients(recipients)
	engine.SetPush(svc)
	push.Use(svc)
	log.Info("push notifications on", "services", on)
	return nil
}
