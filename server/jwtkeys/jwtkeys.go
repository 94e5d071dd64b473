// Package jwtkeys makes new access-token signing keys in the format of
// KILN_JWT_KEYS. It is what `keys generate` runs, in an app's binary and in
// the kiln command alike, and imports nothing of the server.
package jwtkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
)

// Key is one entry of KILN_JWT_KEYS.
type Key struct {
	// KID is the key id put in tokens: the key's RFC 7638 JWK thumbprint.
	KID string `json:"kid"`
	// Key is the 32-byte Ed25519 seed in standard base64.
	Key string `json:"key"`
}

// New returns a new Ed25519 key, reading randomness from r (nil:
// crypto/rand).
func New(r io.Reader) (Key, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return Key{}, err
	}
	return Key{KID: thumbprint(pub), Key: base64.StdEncoding.EncodeToString(priv.Seed())}, nil
}

// Generate returns a KILN_JWT_KEYS value holding one new key: a JSON array
// of {"kid": "...", "key": "<base64 Ed25519 seed>"}, on one line.
func Generate() (string, error) {
	k, err := New(nil)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal([]Key{k})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Hint is the line printed after a generated value, on standard error so
// that standard output holds the value alone; command is what generated it
// ("myapp keys generate").
func Hint(command string) string {
	return `hint: give every instance the same value, e.g. export KILN_JWT_KEYS="$(` + command + `)"; ` +
		`to rotate, put a new key first in the array and drop the old one 15 minutes later`
}

// thumbprint is the RFC 7638 thumbprint of an Ed25519 public key
// (base64url SHA-256 of its canonical JWK), as the server names keys.
func thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
