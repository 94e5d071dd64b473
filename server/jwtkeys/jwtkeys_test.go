package jwtkeys

import (
	"encoding/json"
	"strings"
	"testing"

	"kiln/server/internal/auth"
)

// TestGenerateIsAcceptedByTheServer: the value parses as KILN_JWT_KEYS, and
// the server names the key with the kid written out.
func TestGenerateIsAcceptedByTheServer(t *testing.T) {
	v, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "\n ") {
		t.Errorf("value %q is not one line without spaces", v)
	}
	var keys []Key
	if err := json.Unmarshal([]byte(v), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("value %q: %v", v, err)
	}
	ks, err := auth.ParseKeys(v)
	if err != nil {
		t.Fatal(err)
	}
	if ks.SigningKeyID() != keys[0].KID {
		t.Errorf("kid %q, the server's %q", keys[0].KID, ks.SigningKeyID())
	}
	// Without a kid the server derives the same one: the thumbprint.
	ks, err = auth.ParseKeys(`[{"key":"` + keys[0].Key + `"}]`)
	if err != nil || ks.SigningKeyID() != keys[0].KID {
		t.Errorf("derived kid %v (%v), want %q", ks, err, keys[0].KID)
	}
	if w, _ := Generate(); w == v {
		t.Error("two generated values are the same")
	}
}
