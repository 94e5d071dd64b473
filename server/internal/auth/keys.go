package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"kiln/server/internal/keyfile"
)

// KeySet holds the Ed25519 keys that sign and verify access tokens, each
// with a key id (the JWT "kid" header). The first key signs; every key
// verifies, so a new key can be put first while tokens signed by the old
// one (listed after it) stay valid until they expire.
type KeySet struct {
	keys []keyEntry
	jwks []byte
}

type keyEntry struct {
	kid  string
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// keyFileName is the key file that LoadOrCreateKeys keeps in the data dir.
const keyFileName = "jwt-keys.json"

// jsonKey is one key in the JSON format of ParseKeys and the key file.
// "key" (the README's name) and "private_key" (the key file's, kept for
// compatibility) are the same field.
type jsonKey struct {
	KID        string `json:"kid"`
	Key        string `json:"key,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
}

// keyFormat is the JSON format, as error messages state it.
const keyFormat = `a JSON array of {"kid": "...", "key": "<base64 Ed25519 seed>"}`

// seed returns the key's base64 text from "key" or "private_key".
func (k jsonKey) seed(i int) (string, error) {
	switch {
	case k.Key != "" && k.PrivateKey != "" && k.Key != k.PrivateKey:
		return "", fmt.Errorf("auth keys: key %d: \"key\" and \"private_key\" differ; give only \"key\"", i)
	case k.Key != "":
		return k.Key, nil
	case k.PrivateKey != "":
		return k.PrivateKey, nil
	}
	return "", fmt.Errorf("auth keys: key %d has no \"key\" (expected %s)", i, keyFormat)
}

// NewKeySet returns a KeySet of the given keys, the first signing. Each key
// id is the key's RFC 7638 JWK thumbprint.
func NewKeySet(keys ...ed25519.PrivateKey) (*KeySet, error) {
	entries := make([]keyEntry, 0, len(keys))
	for _, k := range keys {
		if len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("auth keys: invalid Ed25519 private key")
		}
		pub := k.Public().(ed25519.PublicKey)
		entries = append(entries, keyEntry{kid: thumbprint(pub), priv: k, pub: pub})
	}
	return newKeySet(entries)
}

func newKeySet(entries []keyEntry) (*KeySet, error) {
	if len(entries) == 0 {
		return nil, errors.New("auth keys: no keys (expected " + keyFormat + ")")
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.kid == "" {
			return nil, errors.New("auth keys: empty kid")
		}
		if seen[e.kid] {
			return nil, fmt.Errorf("auth keys: duplicate kid %q", e.kid)
		}
		seen[e.kid] = true
	}
	ks := &KeySet{keys: entries}
	ks.jwks = ks.buildJWKS()
	return ks, nil
}

// thumbprint is the RFC 7638 thumbprint of an Ed25519 public key
// (base64url SHA-256 of its canonical JWK).
func thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParseKeys reads keys from configuration (for instance an environment
// variable), in either format:
//
// JSON: an array of objects with "kid" (the key id put in tokens; when
// empty, the key's RFC 7638 thumbprint) and "key" (the 32-byte Ed25519
// seed in base64, standard or URL alphabet, padding optional; the 64-byte
// seed||public form is accepted too; "private_key" is accepted as another
// name for "key"). The first key signs, all verify:
//
//	[{"kid":"2026-11","key":"nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="},
//	 {"kid":"2026-05","key":"..."}]
//
// PEM: one or more "PRIVATE KEY" blocks (PKCS #8 Ed25519, as written by
// `openssl genpkey -algorithm ed25519`), each optionally with a "kid:"
// header; the first signs.
func ParseKeys(pemOrJSON string) (*KeySet, error) {
	s := strings.TrimSpace(pemOrJSON)
	switch {
	case strings.HasPrefix(s, "["), strings.HasPrefix(s, "{"):
		return parseJSONKeys([]byte(s))
	case strings.HasPrefix(s, "-----BEGIN"):
		return parsePEMKeys([]byte(s))
	default:
		return nil, errors.New("auth keys: expected " + keyFormat + `, or PEM "PRIVATE KEY" blocks`)
	}
}

func parseJSONKeys(b []byte) (*KeySet, error) {
	var list []jsonKey
	if bytes.HasPrefix(b, []byte("{")) {
		var one jsonKey
		if err := json.Unmarshal(b, &one); err != nil {
			return nil, fmt.Errorf("auth keys: expected %s: %w", keyFormat, err)
		}
		list = []jsonKey{one}
	} else if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("auth keys: expected %s: %w", keyFormat, err)
	}
	entries := make([]keyEntry, 0, len(list))
	for i, k := range list {
		text, err := k.seed(i)
		if err != nil {
			return nil, err
		}
		raw, err := decodeB64(text)
		if err != nil {
			return nil, fmt.Errorf("auth keys: key %d: key is not base64: %w", i, err)
		}
		var priv ed25519.PrivateKey
		switch len(raw) {
		case ed25519.SeedSize:
			priv = ed25519.NewKeyFromSeed(raw)
		case ed25519.PrivateKeySize:
			priv = ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
			if !bytes.Equal(priv, raw) {
				return nil, fmt.Errorf("auth keys: key %d: public half does not match the seed", i)
			}
		default:
			return nil, fmt.Errorf("auth keys: key %d: key must be a 32-byte Ed25519 seed in base64, got %d bytes", i, len(raw))
		}
		pub := priv.Public().(ed25519.PublicKey)
		kid := k.KID
		if kid == "" {
			kid = thumbprint(pub)
		}
		entries = append(entries, keyEntry{kid: kid, priv: priv, pub: pub})
	}
	return newKeySet(entries)
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func parsePEMKeys(b []byte) (*KeySet, error) {
	var entries []keyEntry
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("auth keys: unexpected PEM block %q (want PRIVATE KEY)", blk.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth keys: %w", err)
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("auth keys: PEM key is %T, want Ed25519", k)
		}
		pub := priv.Public().(ed25519.PublicKey)
		kid := blk.Headers["kid"]
		if kid == "" {
			kid = thumbprint(pub)
		}
		entries = append(entries, keyEntry{kid: kid, priv: priv, pub: pub})
	}
	if len(bytes.TrimSpace(b)) != 0 {
		return nil, errors.New("auth keys: trailing data after PEM blocks")
	}
	return newKeySet(entries)
}

// LoadOrCreateKeys reads <dataDir>/jwt-keys.json (the JSON format of
// ParseKeys), creating it with one new key (mode 0600) on first run. Several
// processes starting at once end up with the same file.
func LoadOrCreateKeys(dataDir string) (*KeySet, error) {
	path := filepath.Join(dataDir, keyFileName)
	b, err := keyfile.LoadOrCreate(path, newKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth keys: %w", err)
	}
	return parseKeyFile(path, b)
}

// newKeyFile returns the content of a key file with one new key.
func newKeyFile() ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	content, err := json.MarshalIndent([]jsonKey{{
		KID:        thumbprint(pub),
		PrivateKey: base64.StdEncoding.EncodeToString(priv.Seed()),
	}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(content, '\n'), nil
}

func parseKeyFile(path string, b []byte) (*KeySet, error) {
	ks, err := ParseKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// SigningKeyID returns the kid of the signing key.
func (k *KeySet) SigningKeyID() string { return k.keys[0].kid }

func (k *KeySet) signing() keyEntry { return k.keys[0] }

func (k *KeySet) lookup(kid string) (ed25519.PublicKey, bool) {
	for _, e := range k.keys {
		if e.kid == kid {
			return e.pub, true
		}
	}
	return nil, false
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func (k *KeySet) buildJWKS() []byte {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: make([]jwk, 0, len(k.keys))}
	for _, e := range k.keys {
		set.Keys = append(set.Keys, jwk{
			Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(e.pub),
			Kid: e.kid, Alg: "EdDSA", Use: "sig",
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // strings only
	}
	return b
}

// JWKS returns the public keys as an RFC 7517 JSON Web Key Set:
// {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,"kid":...,"alg":"EdDSA","use":"sig"}]}.
func (k *KeySet) JWKS() []byte { return bytes.Clone(k.jwks) }

// Handler serves JWKS (for instance at /.well-known/jwks.json), cacheable
// for 5 minutes.
func (k *KeySet) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(k.jwks)
	})
}
