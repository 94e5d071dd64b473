package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

const (
	minPasswordLen = 8
	maxPasswordLen = 128 // characters
)

// argonParams are argon2id parameters.
type argonParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  int
}

// defaultArgon is OWASP's recommended minimum for argon2id: 19 MiB, 2
// iterations, 1 lane.
var defaultArgon = argonParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// argonSem bounds concurrent argon2 computations (each takes Memory KiB), so
// a burst of sign-ins cannot exhaust memory.
var argonSem = make(chan struct{}, max(4, 2*runtime.GOMAXPROCS(0)))

func acquireArgon(ctx context.Context) error {
	select {
	case argonSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password hashing: %w", ctx.Err())
	}
}

func releaseArgon() { <-argonSem }

var b64 = base64.RawStdEncoding

// hashPassword returns the argon2id PHC string of pw:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (unpadded standard base64).
func hashPassword(ctx context.Context, pw string) (string, error) {
	return hashPasswordParams(ctx, pw, defaultArgon)
}

func hashPasswordParams(ctx context.Context, pw string, p argonParams) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	return hashWithSalt(ctx, pw, salt, p)
}

// pendingArgon are the argon2id parameters of pending accounts' hashes.
// They are frozen: a pending account is found by recomputing its hash, so
// changing them would make existing pending accounts unreachable by
// password. (They equal today's defaultArgon.)
var pendingArgon = argonParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// pendingPasswordHash is the hash of pw for a pending account of addr: an
// argon2id PHC string like hashPassword's, but salted with a value derived
// from the address instead of a random one, so that SignIn finds the
// pending account a password opens with one computation and one indexed
// lookup, however many pending accounts the address has. Only accounts
// sharing both address and password share a hash; guessing a pending
// account's password offline costs what guessing any one account's does.
func pendingPasswordHash(ctx context.Context, addr, pw string) (string, error) {
	sum := sha256.Sum256([]byte("kiln pending account\x00" + addr))
	return hashWithSalt(ctx, pw, sum[:pendingArgon.SaltLen], pendingArgon)
}

func hashWithSalt(ctx context.Context, pw string, salt []byte, p argonParams) (string, error) {
	if err := acquireArgon(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	releaseArgon()
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed argon2id hash")

// parseHash reads a PHC argon2id string. Bounds on the parameters keep a
// corrupt or hostile stored hash from costing unbounded memory or time.
func parseHash(h string) (p argonParams, salt, key []byte, err error) {
	parts := strings.Split(h, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: unsupported version %q", errBadHash, parts[2])
	}
	seen := 0
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, nil, nil, errBadHash
		}
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return p, nil, nil, fmt.Errorf("%w: parameter %s", errBadHash, k)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
			seen |= 1
		case "t":
			p.Time = uint32(n)
			seen |= 2
		case "p":
			if n > 255 {
				return p, nil, nil, fmt.Errorf("%w: parameter p", errBadHash)
			}
			p.Threads = uint8(n)
			seen |= 4
		default:
			return p, nil, nil, fmt.Errorf("%w: unknown parameter %s", errBadHash, k)
		}
	}
	if seen != 7 {
		return p, nil, nil, fmt.Errorf("%w: missing parameter", errBadHash)
	}
	if p.Threads < 1 || p.Threads > 64 || p.Time < 1 || p.Time > 64 ||
		p.Memory < 8*uint32(p.Threads) || p.Memory > 1<<21 { // 2 GiB
		return p, nil, nil, fmt.Errorf("%w: parameters out of range", errBadHash)
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, fmt.Errorf("%w: salt", errBadHash)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, fmt.Errorf("%w: hash", errBadHash)
	}
	p.SaltLen, p.KeyLen = len(salt), len(key)
	return p, salt, key, nil
}

// checkPassword reports whether pw matches the PHC hash h, with the
// parameters stored in h, comparing in constant time. rehash is true when
// h uses other parameters than the current defaults.
func checkPassword(ctx context.Context, h, pw string) (ok, rehash bool, err error) {
	p, salt, key, err := parseHash(h)
	if err != nil {
		return false, false, err
	}
	if err := acquireArgon(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	releaseArgon()
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, ok && p != defaultArgon, nil
}

// dummyHash is verified against when the email is unknown, so that a
// sign-in takes as long whether or not the account exists.
var dummyHash = sync.OnceValue(func() string {
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	h, err := hashPassword(context.Background(), string(b64.EncodeToString(pw[:])))
	if err != nil {
		panic(err) // only on a failing system random source
	}
	return h
})
