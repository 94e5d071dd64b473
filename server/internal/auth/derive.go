package auth

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// DeriveSecret returns a 32-byte secret for another purpose than tokens
// (label names it), derived from the signing key with HKDF-SHA256: the
// instances that share KILN_JWT_KEYS share it without another setting. It
// changes when the signing key does, so it suits short-lived signatures
// only.
func (k *KeySet) DeriveSecret(label string) ([]byte, error) {
	return hkdf.Key(sha256.New, k.keys[0].priv.Seed(), nil, "kiln "+label, 32)
}
