package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"kiln/runtime/store"
	"kiln/runtime/store/authdevice"
)

// Device is a user's device registered for push notifications.
type Device struct {
	ID        uuid.UUID
	Platform  string // IOS or ANDROID
	Token     string
	AppID     string
	Locale    string
	Topics    []string
	CreatedAt time.Time
}

// Limits of a device's fields.
const (
	maxDeviceToken = 4096
	maxDeviceField = 255
	maxTopics      = 100
)

func toDevice(d *store.AuthDevice) *Device {
	topics := d.Topics
	if topics == nil {
		topics = []string{}
	}
	return &Device{ID: d.ID, Platform: strings.ToUpper(d.Platform), Token: d.Token, AppID: d.AppID, Locale: d.Locale, Topics: topics, CreatedAt: d.CreatedAt}
}

// RegisterDevice registers userID's device for push notifications, tied to
// the session family that registered it (uuid.Nil for none): signing that
// session out removes it. The token is unique: registered again, the device
// is updated, and a token another user registered moves to userID (the
// device changed hands), losing its topics. Errors: *InputError.
func (s *Service) RegisterDevice(ctx context.Context, userID, family uuid.UUID, platform, token, appID, locale string) (*Device, error) {
	platform = strings.ToLower(platform)
	switch {
	case platform != "ios" && platform != "android":
		return nil, &InputError{Field: "platform", Message: "must be IOS or ANDROID"}
	case strings.TrimSpace(token) == "" || len(token) > maxDeviceToken:
		return nil, &InputError{Field: "token", Message: fmt.Sprintf("must be 1 to %d characters", maxDeviceToken)}
	case strings.TrimSpace(appID) == "" || len(appID) > maxDeviceField:
		return nil, &InputError{Field: "appID", Message: fmt.Sprintf("must be 1 to %d characters", maxDeviceField)}
	case len(locale) > maxDeviceField:
		return nil, &InputError{Field: "locale", Message: fmt.Sprintf("must be at most %d characters", maxDeviceField)}
	}
	var out *store.AuthDevice
	var err error
	for range 2 { // a token registered concurrently: once more, as an update
		err = s.inTx(ctx, func(tx *store.Tx) error {
			d, err := tx.AuthDevice.Query().Where(authdevice.Token(token)).Only(ctx)
			switch {
			case store.IsNotFound(err):
				c := tx.AuthDevice.Create().SetUserID(userID).SetPlatform(platform).SetToken(token).
					SetAppID(appID).SetLocale(locale).SetTopics([]string{})
				if family != uuid.Nil {
					c.SetSessionFamily(family)
				}
				out, err = c.Save(ctx)
				return err
			case err != nil:
				return err
			}
			u := d.Update().SetUserID(userID).SetPlatform(platform).SetAppID(appID).SetLocale(locale)
			if family != uuid.Nil {
				u.SetSessionFamily(family)
			} else {
				u.ClearSessionFamily()
			}
			if d.UserID != userID {
				u.SetTopics([]string{})
			}
			out, err = u.Save(ctx)
			return err
		})
		if !store.IsConstraintError(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("register device: %w", err)
	}
	return toDevice(out), nil
}

// UnregisterDevice removes userID's device with token; false when userID
// has no device with it.
func (s *Service) UnregisterDevice(ctx context.Context, userID uuid.UUID, token string) (bool, error) {
	n, err := s.client.AuthDevice.Delete().Where(authdevice.UserID(userID), authdevice.Token(token)).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("unregister device: %w", err)
	}
	return n > 0, nil
}

// Devices lists userID's devices, newest first.
func (s *Service) Devices(ctx context.Context, userID uuid.UUID) ([]*Device, error) {
	list, err := s.client.AuthDevice.Query().Where(authdevice.UserID(userID)).
		Order(authdevice.ByCreatedAt(), authdevice.ByID()).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	slices.Reverse(list)
	out := make([]*Device, len(list))
	for i, d := range list {
		out[i] = toDevice(d)
	}
	return out, nil
}

// SetTopic subscribes (on) or unsubscribes userID's device with token to
// or from topic; false when userID has no device with it. Errors:
// *InputError for an empty or long topic, or more than 100 topics.
func (s *Service) SetTopic(ctx context.Context, userID uuid.UUID, token, topic string, on bool) (bool, error) {
	if strings.TrimSpace(topic) == "" || len(topic) > maxDeviceField {
		return false, &InputError{Field: "topic", Message: fmt.Sprintf("must be 1 to %d characters", maxDeviceField)}
	}
	found := false
	err := s.inTx(ctx, func(tx *store.Tx) error {
		d, err := tx.AuthDevice.Query().Where(authdevice.UserID(userID), authdevice.Token(token)).Only(ctx)
		if store.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		topics := slices.DeleteFunc(slices.Clone(d.Topics), func(t string) bool { return t == topic })
		if on {
			if len(topics) >= maxTopics {
				return &InputError{Field: "topic", Message: fmt.Sprintf("a device has at most %d topics", maxTopics)}
			}
			topics = append(topics, topic)
		}
		return d.Update().SetTopics(topics).Exec(ctx)
	})
	if err != nil {
		return false, wrapUnlessAPI("set topic", err)
	}
	return found, nil
}

// removeDevices deletes the devices of a session family (a sign-out).
func removeDevices(ctx context.Context, c *store.Client, family uuid.UUID) error {
	if _, err := c.AuthDevice.Delete().Where(authdevice.SessionFamily(family)).Exec(ctx); err != nil {
		return fmt.Errorf("remove the session's devices: %w", err)
	}
	return nil
}
