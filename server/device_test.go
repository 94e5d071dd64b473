package server

import (
	"slices"
	"testing"

	"kiln/server/kilntest"
)

const registerDevice = `mutation($p: DevicePlatform!, $t: String!, $a: String!, $l: String) {
  registerDevice(input: {platform: $p, token: $t, appID: $a, locale: $l}) { id platform token appID locale topics } }`

type deviceOut struct {
	ID, Platform, Token, AppID, Locale string
	Topics                             []string
}

func devices(t *testing.T, s *kilntest.Server, token string) []deviceOut {
	t.Helper()
	var out struct{ Viewer struct{ Devices []deviceOut } }
	s.MustDoAs(t, token, `{ viewer { devices { id platform token appID locale topics } } }`, nil, &out)
	return out.Viewer.Devices
}

func tokens(ds []deviceOut) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Token)
	}
	slices.Sort(out)
	return out
}

// TestDeviceRegistry registers push devices over HTTP: several per user,
// registered again updates, a token registered by a second user moves to
// them, topics, unregistering, removal when the registering session signs
// out and when the account is deleted, and bad input refused.
func TestDeviceRegistry(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		alice := signUp(t, s, "alice@devices.example")
		bob := signUp(t, s, "bob@devices.example")

		var reg struct{ RegisterDevice deviceOut }
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "a1", "a": "com.example.app", "l": "fr-FR"}, &reg)
		if d := reg.RegisterDevice; d.Platform != "IOS" || d.Token != "a1" || d.AppID != "com.example.app" || d.Locale != "fr-FR" || len(d.Topics) != 0 {
			t.Errorf("registered %+v", d)
		}
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "a2", "a": "com.example.app"}, nil)
		// Registered again: the same device, updated.
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "a1", "a": "com.example.app", "l": "de-DE"}, &reg)
		ds := devices(t, s, alice.AccessToken)
		if got := tokens(ds); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Fatalf("alice's devices %v, want a1 a2", got)
		}
		for _, d := range ds {
			if d.Token == "a1" && (d.Locale != "de-DE" || d.ID != reg.RegisterDevice.ID) {
				t.Errorf("a1 registered again: %+v", d)
			}
		}

		// Topics.
		var sub struct{ SubscribeToTopic bool }
		s.MustDoAs(t, alice.AccessToken, `mutation { subscribeToTopic(token: "a1", topic: "news") }`, nil, &sub)
		s.MustDoAs(t, alice.AccessToken, `mutation { subscribeToTopic(token: "a1", topic: "news") }`, nil, nil)
		if !sub.SubscribeToTopic {
			t.Error("subscribeToTopic of alice's own device answered false")
		}
		s.MustDoAs(t, bob.AccessToken, `mutation { subscribeToTopic(token: "a1", topic: "news") }`, nil, &sub)
		if sub.SubscribeToTopic {
			t.Error("bob subscribed alice's device")
		}
		for _, d := range devices(t, s, alice.AccessToken) {
			if d.Token == "a1" && !slices.Equal(d.Topics, []string{"news"}) {
				t.Errorf("a1 topics %v, want [news] once", d.Topics)
			}
		}

		// A token registered by a second user moves to them, without the
		// first user's topics.
		s.MustDoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "a1", "a": "com.example.app"}, &reg)
		if len(reg.RegisterDevice.Topics) != 0 {
			t.Errorf("moved device kept topics %v", reg.RegisterDevice.Topics)
		}
		if got := tokens(devices(t, s, alice.AccessToken)); !slices.Equal(got, []string{"a2"}) {
			t.Errorf("alice's devices after the move %v, want a2", got)
		}
		if got := tokens(devices(t, s, bob.AccessToken)); !slices.Equal(got, []string{"a1"}) {
			t.Errorf("bob's devices after the move %v, want a1", got)
		}

		// Unregister: only one's own.
		var un struct{ UnregisterDevice bool }
		s.MustDoAs(t, bob.AccessToken, `mutation { unregisterDevice(token: "a2") }`, nil, &un)
		if un.UnregisterDevice {
			t.Error("bob unregistered alice's device")
		}
		s.MustDoAs(t, alice.AccessToken, `mutation { unregisterDevice(token: "a2") }`, nil, &un)
		if !un.UnregisterDevice || len(devices(t, s, alice.AccessToken)) != 0 {
			t.Error("alice's unregistered device is still there")
		}

		// Signing out a session removes the devices it registered, not
		// those of the user's other sessions.
		second := signIn(t, s, "alice@devices.example")
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "s1", "a": "com.example.app"}, nil)
		s.MustDoAs(t, second.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "s2", "a": "com.example.app"}, nil)
		s.MustDoAs(t, "", `mutation($r: String!) { signOut(refreshToken: $r) }`, map[string]any{"r": second.RefreshToken}, nil)
		if got := tokens(devices(t, s, alice.AccessToken)); !slices.Equal(got, []string{"s1"}) {
			t.Errorf("alice's devices after signing out the second session %v, want s1", got)
		}
		// Signing out everywhere removes them all.
		s.MustDoAs(t, alice.AccessToken, `mutation { signOutEverywhere }`, nil, nil)
		alice = signIn(t, s, "alice@devices.example")
		if got := devices(t, s, alice.AccessToken); len(got) != 0 {
			t.Errorf("alice's devices after signing out everywhere %v, want none", tokens(got))
		}

		// Deleting the account removes its devices: the token is free for
		// a new user and bob's device stays.
		s.MustDoAs(t, alice.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "d1", "a": "com.example.app"}, nil)
		s.MustDoAs(t, alice.AccessToken, `mutation { deleteAccount(password: "correct horse battery") }`, nil, nil)
		carol := signUp(t, s, "carol@devices.example")
		if got := devices(t, s, carol.AccessToken); len(got) != 0 {
			t.Errorf("a new account has devices %v", tokens(got))
		}
		if got := tokens(devices(t, s, bob.AccessToken)); !slices.Equal(got, []string{"a1"}) {
			t.Errorf("bob's devices after alice's deletion %v, want a1", got)
		}

		// Bad input and callers.
		refused(t, "anonymous caller", s.DoAs(t, "", registerDevice, map[string]any{"p": "IOS", "t": "x", "a": "com.example.app"}), "UNAUTHENTICATED", "")
		refused(t, "admin caller", s.Do(t, registerDevice, map[string]any{"p": "IOS", "t": "x", "a": "com.example.app"}), "UNAUTHENTICATED", "")
		refused(t, "empty token", s.DoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": " ", "a": "com.example.app"}), "BAD_USER_INPUT", "")
		refused(t, "empty app id", s.DoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "y", "a": ""}), "BAD_USER_INPUT", "")
		refused(t, "unknown platform", s.DoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "WEB", "t": "y", "a": "com.example.app"}), "GRAPHQL_VALIDATION_FAILED", "")
		refused(t, "empty topic", s.DoAs(t, bob.AccessToken, `mutation { subscribeToTopic(token: "a1", topic: "") }`, nil), "BAD_USER_INPUT", "")
		r := s.DoAs(t, bob.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": " ", "a": "com.example.app"})
		if len(r.Errors) > 0 && r.Errors[0].Extensions["field"] != "token" {
			t.Errorf("empty token: extensions %v, want field token", r.Errors[0].Extensions)
		}
	})
}

// TestDevicesFollowSessions: a password change revokes the user's other
// sessions and their push devices with them, while the caller's device
// follows the caller into the session the change gives it (signing that one
// out then removes it).
func TestDevicesFollowSessions(t *testing.T) {
	acctBackends(t, nil, func(t *testing.T, s *kilntest.Server) {
		dana := signUp(t, s, "dana@devices.example")
		other := signIn(t, s, "dana@devices.example")
		s.MustDoAs(t, dana.AccessToken, registerDevice, map[string]any{"p": "IOS", "t": "mine", "a": "com.example.app"}, nil)
		s.MustDoAs(t, other.AccessToken, registerDevice, map[string]any{"p": "ANDROID", "t": "theirs", "a": "com.example.app"}, nil)

		var out struct{ ChangePassword session }
		s.MustDoAs(t, dana.AccessToken, `mutation { changePassword(currentPassword: "correct horse battery", newPassword: "purple elephants dance at noon") { `+authFields+` } }`, nil, &out)
		fresh := out.ChangePassword
		if got := tokens(devices(t, s, fresh.AccessToken)); !slices.Equal(got, []string{"mine"}) {
			t.Fatalf("devices after the password change %v, want mine", got)
		}
		s.MustDoAs(t, "", `mutation($r: String!) { signOut(refreshToken: $r) }`, map[string]any{"r": fresh.RefreshToken}, nil)
		var again struct{ SignIn session }
		s.MustDoAs(t, "", `mutation { signIn(input: {email: "dana@devices.example", password: "purple elephants dance at noon"}) { `+authFields+` } }`, nil, &again)
		if got := devices(t, s, again.SignIn.AccessToken); len(got) != 0 {
			t.Errorf("devices after signing out the session that had them %v, want none", tokens(got))
		}
	})
}
