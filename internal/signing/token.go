package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
)

// Errors returned by [Secrets.ParseCallbackToken].
var (
	// ErrMalformedToken means the text cannot be a callback token at all: a
	// wrong length, a bad encoding or an unknown version.
	ErrMalformedToken = errors.New("malformed callback token")
	// ErrForgedToken means the token has the right shape but was not made
	// with any of the active secrets: forged, altered, or made with a
	// secret since retired.
	ErrForgedToken = errors.New("forged callback token")
)

// CallbackRef is what a callback token is bound to: one attempt of one step
// execution.
type CallbackRef struct {
	StepExecutionID uuid.UUID
	Attempt         int
}

// The layout of a callback token before encoding: a version byte, the step
// execution id, the attempt as a big-endian uint32, the random part, and the
// HMAC-SHA256 of all that precedes it.
const (
	tokenVersion = 1

	offID      = 1
	offAttempt = offID + 16
	offRandom  = offAttempt + 4
	offMAC     = offRandom + 16
	tokenBytes = offMAC + sha256.Size // 69, a multiple of 3: no padding bits

	// TokenLength is the length of a callback token's text.
	TokenLength = tokenBytes / 3 * 4 // 92
)

var tokenEncoding = base64.RawURLEncoding.Strict()

// NewCallbackToken returns an unguessable, URL-safe token bound to ref, and
// the SHA-256 hash of its random part, which is all the engine should store.
// The token carries ref, 16 random bytes and an HMAC-SHA256 over them made
// with the first secret (under a key derived for tokens only, so a token's
// MAC is never a webhook signature), encoded as base64url without padding.
// ref.Attempt must be between 0 and math.MaxInt32.
func (s *Secrets) NewCallbackToken(ref CallbackRef) (token string, hash []byte, err error) {
	var random [offMAC - offRandom]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", nil, fmt.Errorf("new callback token: %w", err)
	}
	return s.token(0, ref, random[:])
}

// StableCallbackToken is like [Secrets.NewCallbackToken], but its "random"
// part is derived from ref with the first secret, so that the engine can
// make the same token again from ref alone, without storing it: the token
// of a step that waits for a person must be shown to whoever reads the run
// later. It is as unguessable as a random one to anyone without the secret.
func (s *Secrets) StableCallbackToken(ref CallbackRef) (token string, hash []byte, err error) {
	return s.stableToken(0, ref)
}

// StableCallbackTokenFor makes again the stable token of ref whose hash is
// hash, with whichever active secret made it (the first one then may not be
// first any more, after a rotation). It returns false when no active secret
// makes it.
func (s *Secrets) StableCallbackTokenFor(ref CallbackRef, hash []byte) (string, bool) {
	for i := range s.keys {
		token, h, err := s.stableToken(i, ref)
		if err == nil && hmac.Equal(h, hash) {
			return token, true
		}
	}
	return "", false
}

func (s *Secrets) stableToken(key int, ref CallbackRef) (string, []byte, error) {
	msg := append([]byte("stable callback token v1\x00"), ref.StepExecutionID[:]...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(ref.Attempt))
	return s.token(key, ref, mac(s.keys[key].tokenKey, msg)[:offMAC-offRandom])
}

// token encodes a token of ref with the given random part, its MAC made
// with secret number key.
func (s *Secrets) token(key int, ref CallbackRef, random []byte) (string, []byte, error) {
	if ref.Attempt < 0 || ref.Attempt > math.MaxInt32 {
		return "", nil, fmt.Errorf("new callback token: attempt %d out of range", ref.Attempt)
	}
	var b [tokenBytes]byte
	b[0] = tokenVersion
	copy(b[offID:offAttempt], ref.StepExecutionID[:])
	binary.BigEndian.PutUint32(b[offAttempt:offRandom], uint32(ref.Attempt))
	copy(b[offRandom:offMAC], random)
	copy(b[offMAC:], mac(s.keys[key].tokenKey, b[:offMAC]))
	sum := sha256.Sum256(b[offRandom:offMAC])
	return tokenEncoding.EncodeToString(b[:]), sum[:], nil
}

// ParseCallbackToken checks token's MAC against every secret, in constant
// time, and returns the reference the token is bound to and the SHA-256 hash
// of its random part, to compare with the stored one. It returns
// [ErrMalformedToken] for text that cannot be a token and [ErrForgedToken]
// for a token no active secret made. It never panics, whatever the input.
func (s *Secrets) ParseCallbackToken(token string) (CallbackRef, []byte, error) {
	if len(token) != TokenLength {
		return CallbackRef{}, nil, ErrMalformedToken
	}
	var b [tokenBytes]byte
	n, err := tokenEncoding.Decode(b[:], []byte(token))
	if err != nil || n != tokenBytes || b[0] != tokenVersion {
		return CallbackRef{}, nil, ErrMalformedToken
	}
	match := 0
	for _, k := range s.keys {
		if hmac.Equal(mac(k.tokenKey, b[:offMAC]), b[offMAC:]) {
			match = 1
		}
	}
	if match != 1 {
		return CallbackRef{}, nil, ErrForgedToken
	}
	attempt := binary.BigEndian.Uint32(b[offAttempt:offRandom])
	if attempt > math.MaxInt32 {
		// Only a token made by a buggy Durable could get here.
		return CallbackRef{}, nil, ErrMalformedToken
	}
	var ref CallbackRef
	copy(ref.StepExecutionID[:], b[offID:offAttempt])
	ref.Attempt = int(attempt)
	sum := sha256.Sum256(b[offRandom:offMAC])
	return ref, sum[:], nil
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}
