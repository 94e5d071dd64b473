package job

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"e1","model":"Post"}`)
	h := Sign("s3cret", now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := Verify("s3cret", h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	for _, c := range []struct {
		name, secret, header string
		body                 []byte
		at                   time.Time
	}{
		{"tampered body", "s3cret", h, []byte(`{"id":"e2","model":"Post"}`), now},
		{"other secret", "other", h, body, now},
		{"too old (replay)", "s3cret", h, body, now.Add(6 * time.Minute)},
		{"from the future", "s3cret", h, body, now.Add(-6 * time.Minute)},
		{"no v1", "s3cret", "t=1800000000", body, now},
		{"bad timestamp", "s3cret", "t=abc,v1=00", body, now},
		{"empty", "s3cret", "", body, now},
	} {
		if err := Verify(c.secret, c.header, c.body, c.at, 5*time.Minute); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: Verify = %v, want ErrSignature", c.name, err)
		}
	}
}
