package config

import (
	"errors"
	"fmt"
	"strconv"
)

// RealtimeConfig bounds what one client may hold open for realtime: WebSocket
// connections and subscriptions, counted per client address (IPv6 by /64)
// and per user on each server instance. 0 disables a cap. Administrators
// (the admin secret) are not counted.
type RealtimeConfig struct {
	// MaxConnectionsPerIP caps the WebSocket connections of one client
	// address (KILN_WS_MAX_CONNECTIONS_PER_IP, default 1000).
	MaxConnectionsPerIP int
	// MaxConnectionsPerUser caps the WebSocket connections of one user
	// (KILN_WS_MAX_CONNECTIONS_PER_USER, default 20).
	MaxConnectionsPerUser int
	// MaxSubscriptionsPerConnection caps the operations running at once on
	// one WebSocket connection (KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
	// default 100).
	MaxSubscriptionsPerConnection int
	// MaxSubscriptionsPerIP caps the live WebSocket subscriptions of one
	// client address across its connections (KILN_WS_MAX_SUBSCRIPTIONS_PER_IP,
	// default 5000).
	MaxSubscriptionsPerIP int
	// MaxSubscriptionsPerUser caps the live WebSocket subscriptions of one
	// user across their connections (KILN_WS_MAX_SUBSCRIPTIONS_PER_USER,
	// default 500).
	MaxSubscriptionsPerUser int
	// MaxSQLFilteredPerIP caps the live subscriptions (WebSocket or SSE)
	// of one client address whose where needs SQL for every event: a
	// relation filter (hasX, hasXWith) or a filter that rules protect
	// (KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_IP, default 100).
	MaxSQLFilteredPerIP int
	// MaxSQLFilteredPerUser is the same per user
	// (KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER, default 10).
	MaxSQLFilteredPerUser int
	// RateLimitCloseAfter is how many operations in a row over the rate
	// limit a WebSocket connection is answered RATE_LIMITED before it is
	// closed with 1013 (KILN_WS_RATE_LIMIT_CLOSE_AFTER, default 100).
	RateLimitCloseAfter int
}

// DefaultRealtime is the realtime configuration when no variable is set.
var DefaultRealtime = RealtimeConfig{
	MaxConnectionsPerIP:           1000,
	MaxConnectionsPerUser:         20,
	MaxSubscriptionsPerConnection: 100,
	MaxSubscriptionsPerIP:         5000,
	MaxSubscriptionsPerUser:       500,
	MaxSQLFilteredPerIP:           100,
	MaxSQLFilteredPerUser:         10,
	RateLimitCloseAfter:           100,
}

// load sets r from the environment (DefaultRealtime for unset variables);
// the error names every bad variable.
func (r *RealtimeConfig) load(getenv func(string) string) error {
	*r = DefaultRealtime
	var errs []error
	for _, v := range []struct {
		env      string
		dst      *int
		zeroOK   bool // 0 disables the cap
		disables string
	}{
		{"KILN_WS_MAX_CONNECTIONS_PER_IP", &r.MaxConnectionsPerIP, true, "no cap"},
		{"KILN_WS_MAX_CONNECTIONS_PER_USER", &r.MaxConnectionsPerUser, true, "no cap"},
		{"KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", &r.MaxSubscriptionsPerConnection, false, ""},
		{"KILN_WS_MAX_SUBSCRIPTIONS_PER_IP", &r.MaxSubscriptionsPerIP, true, "no cap"},
		{"KILN_WS_MAX_SUBSCRIPTIONS_PER_USER", &r.MaxSubscriptionsPerUser, true, "no cap"},
		{"KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_IP", &r.MaxSQLFilteredPerIP, true, "no cap"},
		{"KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER", &r.MaxSQLFilteredPerUser, true, "no cap"},
		{"KILN_WS_RATE_LIMIT_CLOSE_AFTER", &r.RateLimitCloseAfter, true, "never close"},
	} {
		s := getenv(v.env)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		switch {
		case err != nil || n < 0 || n == 0 && !v.zeroOK:
			if v.zeroOK {
				errs = append(errs, fmt.Errorf("%s must be a non-negative integer (0: %s), got %q", v.env, v.disables, s))
			} else {
				errs = append(errs, fmt.Errorf("%s must be a positive integer, got %q", v.env, s))
			}
		default:
			*v.dst = n
		}
	}
	return errors.Join(errs...)
}
