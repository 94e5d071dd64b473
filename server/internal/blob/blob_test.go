package blob_test

import (
	"errors"
	"strings"
	"testing"

	"kiln/server/internal/blob"
)

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "a/b/c.png", "uploads/0f8c-uuid", "..a", "a..", "a/.b", "ünï/😀", "a b", strings.Repeat("k", blob.MaxKeyLen)} {
		if err := blob.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range []string{"", "/a", "a/", "a//b", ".", "..", "../a", "a/..", "a/./b", "a\\b", "a\x00", "a\nb", "a\x7f", "\xff", strings.Repeat("k", blob.MaxKeyLen+1)} {
		err := blob.ValidateKey(key)
		if !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b", "a/b/"} {
		if err := blob.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"/", "../", "a//", "/a"} {
		if err := blob.ValidatePrefix(p); err == nil {
			t.Errorf("ValidatePrefix(%q) = nil", p)
		}
	}
}

func TestValidateContentType(t *testing.T) {
	for _, ct := range []string{"image/png", "text/plain; charset=utf-8", "application/vnd.api+json"} {
		if err := blob.ValidateContentType(ct); err != nil {
			t.Errorf("ValidateContentType(%q) = %v", ct, err)
		}
	}
	for _, ct := range []string{"", " image/png", "image/png ", "text/plain\r\nX: y", "é/x", strings.Repeat("a", 256)} {
		if err := blob.ValidateContentType(ct); err == nil {
			t.Errorf("ValidateContentType(%q) = nil", ct)
		}
	}
}

func TestNormalizeSHA256(t *testing.T) {
	if got, err := blob.NormalizeSHA256(strings.ToUpper(blob.EmptySHA256)); err != nil || got != blob.EmptySHA256 {
		t.Errorf("NormalizeSHA256(upper) = %q, %v", got, err)
	}
	if got, err := blob.NormalizeSHA256(""); err != nil || got != "" {
		t.Errorf(`NormalizeSHA256("") = %q, %v`, got, err)
	}
	for _, h := range []string{"abc", strings.Repeat("g", 64), blob.EmptySHA256 + "0"} {
		if _, err := blob.NormalizeSHA256(h); err == nil {
			t.Errorf("NormalizeSHA256(%q) = nil error", h)
		}
	}
}
