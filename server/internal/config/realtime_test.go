package config

import (
	"strings"
	"testing"
)

func TestRealtimeConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Realtime != DefaultRealtime {
		t.Fatalf("defaults: %+v", c.Realtime)
	}
	c, err = Load(nil, env(map[string]string{
		"KILN_WS_MAX_CONNECTIONS_PER_IP": "0", "KILN_WS_MAX_SUBSCRIPTIONS_PER_USER": "7",
		"KILN_MAX_SQL_FILTERED_SUBSCRIPTIONS_PER_USER": "3", "KILN_WS_RATE_LIMIT_CLOSE_AFTER": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Realtime; r.MaxConnectionsPerIP != 0 || r.MaxSubscriptionsPerUser != 7 || r.MaxSQLFilteredPerUser != 3 ||
		r.RateLimitCloseAfter != 0 || r.MaxConnectionsPerUser != DefaultRealtime.MaxConnectionsPerUser {
		t.Fatalf("set: %+v", r)
	}
	_, err = Load(nil, env(map[string]string{"KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": "0", "KILN_WS_MAX_CONNECTIONS_PER_USER": "-1"}))
	if err == nil || !strings.Contains(err.Error(), "KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION must be a positive integer") ||
		!strings.Contains(err.Error(), "KILN_WS_MAX_CONNECTIONS_PER_USER must be a non-negative integer") {
		t.Fatalf("bad values: %v", err)
	}
}
