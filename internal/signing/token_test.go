package signing_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/signing"
)

func TestCallbackTokenRoundTrip(t *testing.T) {
	t.Parallel()
	secrets := parse(t, newSecret(t))
	for _, attempt := range []int{0, 1, 7, math.MaxInt32} {
		ref := signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: attempt}
		token, hash, err := secrets.NewCallbackToken(ref)
		require.NoError(t, err)
		require.Len(t, token, signing.TokenLength)
		require.Len(t, hash, sha256.Size)
		require.NotContains(t, token, "=")
		for _, r := range token {
			require.True(t, r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9'), "URL-safe: %q", r)
		}

		got, gotHash, err := secrets.ParseCallbackToken(token)
		require.NoError(t, err)
		require.Equal(t, ref, got)
		require.Equal(t, hash, gotHash)
	}

	// Two tokens for the same ref differ, and so do their hashes.
	ref := signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 1}
	t1, h1, err := secrets.NewCallbackToken(ref)
	require.NoError(t, err)
	t2, h2, err := secrets.NewCallbackToken(ref)
	require.NoError(t, err)
	require.NotEqual(t, t1, t2)
	require.NotEqual(t, h1, h2)

	_, _, err = secrets.NewCallbackToken(signing.CallbackRef{Attempt: -1})
	require.Error(t, err)
}

func TestCallbackTokenHashIsOfRandomPartOnly(t *testing.T) {
	t.Parallel()
	secrets := parse(t, newSecret(t))
	token, hash, err := secrets.NewCallbackToken(signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 3})
	require.NoError(t, err)
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err)
	found := false
	for i := 0; i+16 <= len(raw); i++ {
		sum := sha256.Sum256(raw[i : i+16])
		if bytes.Equal(sum[:], hash) {
			found = true
		}
	}
	require.True(t, found)
	require.NotContains(t, string(raw), string(hash), "the stored hash is not in the token")
}

func TestCallbackTokenAltered(t *testing.T) {
	t.Parallel()
	secrets := parse(t, newSecret(t))
	token, _, err := secrets.NewCallbackToken(signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 2})
	require.NoError(t, err)

	// Flip every bit of every decoded byte, then re-encode.
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err)
	for i := range raw {
		for bit := range 8 {
			altered := bytes.Clone(raw)
			altered[i] ^= 1 << bit
			_, _, err := secrets.ParseCallbackToken(base64.RawURLEncoding.EncodeToString(altered))
			require.True(t, errors.Is(err, signing.ErrForgedToken) || errors.Is(err, signing.ErrMalformedToken), "byte %d bit %d: %v", i, bit, err)
		}
	}
	// Change every character of the text to every other one.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \x00\xff"
	for i := range len(token) {
		for _, c := range []byte(alphabet) {
			if c == token[i] {
				continue
			}
			altered := []byte(token)
			altered[i] = c
			_, _, err := secrets.ParseCallbackToken(string(altered))
			require.True(t, errors.Is(err, signing.ErrForgedToken) || errors.Is(err, signing.ErrMalformedToken), "char %d=%q: %v", i, c, err)
		}
	}
}

func TestCallbackTokenOtherSecrets(t *testing.T) {
	t.Parallel()
	a, b := newSecret(t), newSecret(t)
	ref := signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 1}
	token, hash, err := parse(t, a).NewCallbackToken(ref)
	require.NoError(t, err)

	_, _, err = parse(t, b).ParseCallbackToken(token)
	require.ErrorIs(t, err, signing.ErrForgedToken)

	// After rotation (b now signs, a still verifies) the old token still works.
	got, gotHash, err := parse(t, b+" "+a).ParseCallbackToken(token)
	require.NoError(t, err)
	require.Equal(t, ref, got)
	require.Equal(t, hash, gotHash)

	// The MAC is not made with the webhook key itself: tokens and webhook
	// signatures are domain-separated.
	raw, err := base64.RawURLEncoding.DecodeString(token)
	require.NoError(t, err)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	require.NoError(t, err)
	h := hmac.New(sha256.New, key)
	h.Write(raw[:len(raw)-sha256.Size])
	require.NotEqual(t, h.Sum(nil), raw[len(raw)-sha256.Size:])
}

func TestCallbackTokenMalformed(t *testing.T) {
	t.Parallel()
	secrets := parse(t, newSecret(t))
	token, _, err := secrets.NewCallbackToken(signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 1})
	require.NoError(t, err)
	padded := base64.URLEncoding.EncodeToString([]byte(strings.Repeat("x", 69)))

	for name, in := range map[string]string{
		"empty":        "",
		"truncated":    token[:len(token)-1],
		"half":         token[:len(token)/2],
		"oversized":    token + "A",
		"doubled":      token + token,
		"huge":         strings.Repeat("A", 1<<20),
		"std alphabet": strings.Repeat("+/", signing.TokenLength/2),
		"padding":      padded,
		"spaces":       strings.Repeat(" ", signing.TokenLength),
		"non-ascii":    strings.Repeat("é", signing.TokenLength/2),
		"garbage":      "not-a-token",
		"zero version": strings.Repeat("A", signing.TokenLength),
	} {
		ref, hash, err := secrets.ParseCallbackToken(in)
		require.ErrorIs(t, err, signing.ErrMalformedToken, name)
		require.Zero(t, ref, name)
		require.Nil(t, hash, name)
	}
	// The right shape but a MAC of zeros: forged.
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	clear(raw[len(raw)-32:])
	_, _, err = secrets.ParseCallbackToken(base64.RawURLEncoding.EncodeToString(raw))
	require.ErrorIs(t, err, signing.ErrForgedToken)
}

func FuzzParseCallbackToken(f *testing.F) {
	secrets, err := signing.ParseSecrets("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	ref := signing.CallbackRef{StepExecutionID: uuid.MustParse("0b8f2a4e-7c1d-4e5f-9a6b-3c2d1e0f9a8b"), Attempt: 4}
	token, _, err := secrets.NewCallbackToken(ref)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(token)
	f.Add(token[:len(token)-1] + "A")
	f.Add("")
	f.Add(strings.Repeat("A", signing.TokenLength))
	f.Add(strings.Repeat("_", signing.TokenLength))
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, in string) {
		got, hash, err := secrets.ParseCallbackToken(in)
		if err != nil {
			if !errors.Is(err, signing.ErrMalformedToken) && !errors.Is(err, signing.ErrForgedToken) {
				t.Fatalf("unexpected error %v", err)
			}
			if hash != nil || got != (signing.CallbackRef{}) {
				t.Fatal("a failed parse returned data")
			}
			return
		}
		// Only a token this secret made parses; the fuzzer cannot forge one.
		if got.Attempt < 0 || len(hash) != sha256.Size {
			t.Fatalf("bad parse %+v %x", got, hash)
		}
		raw, err := base64.RawURLEncoding.DecodeString(in)
		if err != nil {
			t.Fatalf("accepted a token that does not decode: %v", err)
		}
		if base64.RawURLEncoding.EncodeToString(raw) != in {
			t.Fatal("accepted a non-canonical encoding")
		}
	})
}

func TestStableCallbackToken(t *testing.T) {
	t.Parallel()
	s, err := signing.ParseSecrets(newSecret(t))
	require.NoError(t, err)
	ref := signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 1}
	a, hashA, err := s.StableCallbackToken(ref)
	require.NoError(t, err)
	b, hashB, err := s.StableCallbackToken(ref)
	require.NoError(t, err)
	require.Equal(t, a, b, "the same ref gives the same token")
	require.Equal(t, hashA, hashB)
	got, hash, err := s.ParseCallbackToken(a)
	require.NoError(t, err)
	require.Equal(t, ref, got)
	require.Equal(t, hashA, hash)

	other, _, err := s.StableCallbackToken(signing.CallbackRef{StepExecutionID: ref.StepExecutionID, Attempt: 2})
	require.NoError(t, err)
	require.NotEqual(t, a, other)
	s2, err := signing.ParseSecrets(newSecret(t))
	require.NoError(t, err)
	c, _, err := s2.StableCallbackToken(ref)
	require.NoError(t, err)
	require.NotEqual(t, a, c, "another secret gives another token")
}

func TestStableCallbackTokenAfterRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecret := newSecret(t), newSecret(t)
	before, err := signing.ParseSecrets(oldSecret)
	require.NoError(t, err)
	ref := signing.CallbackRef{StepExecutionID: uuid.New(), Attempt: 1}
	token, hash, err := before.StableCallbackToken(ref)
	require.NoError(t, err)

	after, err := signing.ParseSecrets(newSecret + " " + oldSecret)
	require.NoError(t, err)
	again, ok := after.StableCallbackTokenFor(ref, hash)
	require.True(t, ok, "the retired-first secret still makes the token")
	require.Equal(t, token, again)
	_, _, err = after.ParseCallbackToken(again)
	require.NoError(t, err)

	onlyNew, err := signing.ParseSecrets(newSecret)
	require.NoError(t, err)
	_, ok = onlyNew.StableCallbackTokenFor(ref, hash)
	require.False(t, ok, "a removed secret's tokens cannot be made again")
}
