// Package signing holds Durable's secrets and everything made with them: the
// Standard Webhooks signatures of the requests Durable sends to step
// endpoints, and the callback tokens those endpoints use to finish a step.
//
// Secrets are written in the Standard Webhooks form, "whsec_" followed by the
// standard base64 encoding of the key. Several secrets may be active at once
// for key rotation: the first one signs, and every one verifies. Nothing in
// this package logs, and a [Secrets] never prints its keys.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret in its textual form.
const SecretPrefix = "whsec_"

// The bounds of a decoded secret's length, in bytes.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// Tolerance is how far a webhook timestamp may be from the verifier's clock,
// in either direction, as Standard Webhooks recommends.
const Tolerance = 5 * time.Minute

// Errors returned by [Secrets.Verify].
var (
	ErrMalformedHeaders = errors.New("webhook headers are missing or malformed")
	ErrTimestamp        = errors.New("webhook timestamp is too far from the current time")
	ErrNoMatch          = errors.New("no webhook signature matches")
)

// Secrets are the active signing secrets; the first one signs, all verify.
// A Secrets is immutable and safe for concurrent use. Its String, GoString
// and Format methods never reveal the keys.
type Secrets struct {
	keys []secret
}

type secret struct {
	key      []byte // signs webhooks
	tokenKey []byte // signs callback tokens: HMAC(key, tokenKeyLabel)
}

// tokenKeyLabel separates the callback-token key from the webhook key, so
// that no webhook signature can ever be presented as a token MAC, or the
// other way round.
const tokenKeyLabel = "durable callback token v1"

// ParseSecrets parses one or more secrets in the "whsec_<base64>" form,
// separated by white space. Each must decode to MinSecretBytes to
// MaxSecretBytes bytes, and no secret may be given twice. Error messages
// name a secret by its position, never by its value.
func ParseSecrets(s string) (*Secrets, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("no signing secret given: expected one or more whsec_… secrets separated by spaces")
	}
	out := &Secrets{keys: make([]secret, 0, len(fields))}
	for i, f := range fields {
		key, err := decodeSecret(f)
		if err != nil {
			if len(fields) == 1 {
				return nil, fmt.Errorf("signing secret: %w", err)
			}
			return nil, fmt.Errorf("signing secret %d of %d: %w", i+1, len(fields), err)
		}
		for j, k := range out.keys {
			if hmac.Equal(k.key, key) {
				return nil, fmt.Errorf("signing secret %d repeats secret %d", i+1, j+1)
			}
		}
		out.keys = append(out.keys, secret{key: key, tokenKey: mac(key, []byte(tokenKeyLabel))})
	}
	return out, nil
}

func decodeSecret(f string) ([]byte, error) {
	b64, ok := strings.CutPrefix(f, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("does not start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Accept a secret whose padding was dropped, as some tools do.
		var err2 error
		if key, err2 = base64.RawStdEncoding.DecodeString(b64); err2 != nil {
			return nil, errors.New("is not valid base64 after " + SecretPrefix)
		}
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("decodes to %d bytes; a secret must have %d to %d", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// GenerateSecret returns a new random secret of 32 bytes in the
// "whsec_<base64>" form.
func GenerateSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// Len returns the number of secrets.
func (s *Secrets) Len() int { return len(s.keys) }

// String describes s without revealing any key.
func (s *Secrets) String() string {
	if s == nil {
		return "signing.Secrets(nil)"
	}
	return "signing.Secrets(" + strconv.Itoa(len(s.keys)) + " keys, redacted)"
}

// GoString describes s without revealing any key, for %#v.
func (s *Secrets) GoString() string { return s.String() }

// Format describes s without revealing any key, whatever the verb.
func (s *Secrets) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// SignatureHeader returns the value of the webhook-signature header for a
// message: "v1,<base64 HMAC-SHA256 of msgID.unix(ts).body>" for every
// secret, separated by spaces, the first secret's first. Receivers that know
// any one of the secrets can verify it.
func (s *Secrets) SignatureHeader(msgID string, ts time.Time, body []byte) string {
	var b strings.Builder
	for i, k := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(webhookMAC(k.key, msgID, ts.Unix(), body)))
	}
	return b.String()
}

func webhookMAC(key []byte, msgID string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a message against its webhook-id, webhook-timestamp and
// webhook-signature header values, as a step endpoint does: it accepts when
// any v1 signature in header matches any of the secrets (compared in
// constant time) and the timestamp is within [Tolerance] of the current
// time. Signatures of other schemes (v1a, …) are ignored. It returns an
// error wrapping [ErrMalformedHeaders], [ErrTimestamp] or [ErrNoMatch].
func (s *Secrets) Verify(msgID, timestamp string, body []byte, header string) error {
	return s.VerifyAt(msgID, timestamp, body, header, time.Now())
}

// VerifyAt is [Secrets.Verify] with the current time given.
func (s *Secrets) VerifyAt(msgID, timestamp string, body []byte, header string, now time.Time) error {
	if msgID == "" || timestamp == "" || header == "" {
		return fmt.Errorf("verify webhook: %w", ErrMalformedHeaders)
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("verify webhook: timestamp is not a number of seconds: %w", ErrMalformedHeaders)
	}
	ts := time.Unix(unix, 0)
	if ts.Before(now.Add(-Tolerance)) || ts.After(now.Add(Tolerance)) {
		return fmt.Errorf("verify webhook: %w", ErrTimestamp)
	}
	expected := make([][]byte, len(s.keys))
	for i, k := range s.keys {
		expected[i] = webhookMAC(k.key, msgID, unix, body)
	}
	for _, sig := range strings.Fields(header) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			continue
		}
		for _, e := range expected {
			if hmac.Equal(got, e) {
				return nil
			}
		}
	}
	return fmt.Errorf("verify webhook: %w", ErrNoMatch)
}

// DerivedKey returns a key for another use of the first secret, named by
// label: HMAC(secret, label), so that nothing signed with it can be
// presented as a webhook signature or a callback token, nor the other way
// round. Every process configured with the same secrets derives the same
// key; rotating the secrets changes it.
func (s *Secrets) DerivedKey(label string) []byte {
	return mac(s.keys[0].key, []byte(label))
}
