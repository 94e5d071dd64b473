package server

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

var requestIDAttr = regexp.MustCompile(`request_id=[^ "]+`)

// TestLogs: every request line carries the request id and, when signed in,
// the user id; no line ever carries a password, a token or the admin
// secret.
func TestLogs(t *testing.T) {
	s := kilntest.Start(t, serverBin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET="+adminSecret,
		"KILN_LOG_LEVEL=debug")
	alice := signUp(t, s, "alice@example.com")
	again := signIn(t, s, "alice@example.com")
	var refreshed struct{ RefreshSession session }
	s.MustDoAs(t, "", `mutation($r: String!) { refreshSession(refreshToken: $r) { `+authFields+` } }`,
		map[string]any{"r": again.RefreshToken}, &refreshed)
	var changed struct{ ChangePassword session }
	s.MustDoAs(t, refreshed.RefreshSession.AccessToken, `mutation { changePassword(currentPassword: "correct horse battery", newPassword: "another long secret") { `+authFields+` } }`, nil, &changed)
	s.MustDoAs(t, changed.ChangePassword.AccessToken, `{ viewer { id } }`, nil, nil)
	s.MustDo(t, `{ posts { totalCount } }`, nil, nil) // admin

	secrets := map[string]string{
		"password": "correct horse battery", "new password": "another long secret", "admin secret": adminSecret,
		"access token": alice.AccessToken, "refresh token": again.RefreshToken,
		"rotated refresh token": refreshed.RefreshSession.RefreshToken, "new access token": changed.ChangePassword.AccessToken,
		"new refresh token": changed.ChangePassword.RefreshToken, "authorization header": "Bearer ",
	}
	// The request line is written after the response: wait for the last.
	logs := s.Logs()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(logs, "msg=request ") < 6 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		logs = s.Logs()
	}
	var requests, signedIn int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		for what, secret := range secrets {
			if strings.Contains(line, secret) {
				t.Errorf("a log line carries the %s: %s", what, line)
			}
		}
		if !strings.Contains(line, "msg=request ") || !strings.Contains(line, "path=/graphql ") {
			continue
		}
		requests++
		if !requestIDAttr.MatchString(line) {
			t.Errorf("request line without request_id: %s", line)
		}
		if strings.Contains(line, "user_id="+alice.User.ID) {
			signedIn++
		}
	}
	// changePassword and viewer ran as alice.
	if requests < 6 || signedIn < 2 {
		t.Fatalf("%d /graphql request lines, %d with alice's user_id; want >= 6 and >= 2\n%s", requests, signedIn, logs)
	}
}
