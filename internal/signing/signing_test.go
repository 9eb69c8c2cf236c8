package signing_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/signing"
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signing.GenerateSecret()
	require.NoError(t, err)
	return s
}

func parse(t *testing.T, s string) *signing.Secrets {
	t.Helper()
	secrets, err := signing.ParseSecrets(s)
	require.NoError(t, err)
	return secrets
}

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

var bodies = [][]byte{
	[]byte(`{"run_id":"5b4c8a2e","step":"charge","attempt":1,"input":{"amount":42}}`),
	[]byte(`{}`),
	{},
	[]byte("{\"unicode\":\"héllo — 世界 \\u0000\",\"nl\":\"a\\nb\"}\n"),
	bytes.Repeat([]byte(`{"k":"v"},`), 10_000),
}

func TestSignatureVerifiedByReference(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	secrets := parse(t, secret)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)

	for i, body := range bodies {
		ts := time.Now()
		id := fmt.Sprintf("msg_%d", i)
		sig := secrets.SignatureHeader(id, ts, body)
		require.True(t, strings.HasPrefix(sig, "v1,"), sig)
		require.NoError(t, wh.Verify(body, headers(id, ts, sig)), "body %d", i)

		// The reference rejects an altered body, id or timestamp.
		require.Error(t, wh.Verify(append(append([]byte{}, body...), ' '), headers(id, ts, sig)))
		require.Error(t, wh.Verify(body, headers(id+"x", ts, sig)))
		require.Error(t, wh.Verify(body, headers(id, ts.Add(-time.Second), sig)))
	}
}

func TestReferenceSignatureVerifies(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	secrets := parse(t, secret)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)

	for i, body := range bodies {
		ts := time.Now()
		id := fmt.Sprintf("msg_%d", i)
		sig, err := wh.Sign(id, ts, body)
		require.NoError(t, err)
		// Ours signs exactly as the reference does.
		require.Equal(t, sig, secrets.SignatureHeader(id, ts, body))
		tsText := strconv.FormatInt(ts.Unix(), 10)
		require.NoError(t, secrets.Verify(id, tsText, body, sig))
		require.ErrorIs(t, secrets.Verify(id, tsText, append([]byte("x"), body...), sig), signing.ErrNoMatch)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldSecret, newSecretText := newSecret(t), newSecret(t)
	both := parse(t, newSecretText+"  "+oldSecret)
	require.Equal(t, 2, both.Len())

	ts := time.Now()
	body := []byte(`{"step":"rotate"}`)
	header := both.SignatureHeader("msg_1", ts, body)
	sigs := strings.Split(header, " ")
	require.Len(t, sigs, 2)
	require.Equal(t, parse(t, newSecretText).SignatureHeader("msg_1", ts, body), sigs[0], "the first secret signs first")
	require.Equal(t, parse(t, oldSecret).SignatureHeader("msg_1", ts, body), sigs[1])

	for _, secret := range []string{oldSecret, newSecretText} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, headers("msg_1", ts, header)))
		require.NoError(t, parse(t, secret).Verify("msg_1", strconv.FormatInt(ts.Unix(), 10), body, header))
	}
	// A receiver that knows neither secret rejects it.
	wh, err := standardwebhooks.NewWebhook(newSecret(t))
	require.NoError(t, err)
	require.Error(t, wh.Verify(body, headers("msg_1", ts, header)))
	require.ErrorIs(t, parse(t, newSecret(t)).Verify("msg_1", strconv.FormatInt(ts.Unix(), 10), body, header), signing.ErrNoMatch)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secrets := parse(t, newSecret(t))
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"a":1}`)
	good := secrets.SignatureHeader("msg_1", now, body)
	ts := strconv.FormatInt(now.Unix(), 10)

	require.NoError(t, secrets.VerifyAt("msg_1", ts, body, good, now))
	require.NoError(t, secrets.VerifyAt("msg_1", ts, body, "v1a,AAAA v1,bad=== "+good, now), "other schemes and bad entries are skipped")
	require.NoError(t, secrets.VerifyAt("msg_1", ts, body, good, now.Add(signing.Tolerance)))
	require.NoError(t, secrets.VerifyAt("msg_1", ts, body, good, now.Add(-signing.Tolerance)))

	cases := []struct {
		name           string
		id, ts, header string
		body           []byte
		now            time.Time
		want           error
	}{
		{"too old", "msg_1", ts, good, body, now.Add(signing.Tolerance + time.Second), signing.ErrTimestamp},
		{"too new", "msg_1", ts, good, body, now.Add(-signing.Tolerance - time.Second), signing.ErrTimestamp},
		{"no id", "", ts, good, body, now, signing.ErrMalformedHeaders},
		{"no timestamp", "msg_1", "", good, body, now, signing.ErrMalformedHeaders},
		{"bad timestamp", "msg_1", "12x", good, body, now, signing.ErrMalformedHeaders},
		{"no signature", "msg_1", ts, "", body, now, signing.ErrMalformedHeaders},
		{"other body", "msg_1", ts, good, []byte(`{"a":2}`), now, signing.ErrNoMatch},
		{"other id", "msg_2", ts, good, body, now, signing.ErrNoMatch},
		{"v1a only", "msg_1", ts, "v1a," + strings.TrimPrefix(good, "v1,"), body, now, signing.ErrNoMatch},
		{"garbage", "msg_1", ts, "v1 ,,, v1,", body, now, signing.ErrNoMatch},
	}
	for _, c := range cases {
		err := secrets.VerifyAt(c.id, c.ts, c.body, c.header, c.now)
		require.ErrorIs(t, err, c.want, c.name)
	}
}

func TestParseSecrets(t *testing.T) {
	t.Parallel()
	key := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, n)) }
	good := newSecret(t)

	s, err := signing.ParseSecrets("\n " + good + "\t")
	require.NoError(t, err)
	require.Equal(t, 1, s.Len())
	_, err = signing.ParseSecrets("whsec_" + key(24) + " whsec_" + key(64))
	require.NoError(t, err)
	_, err = signing.ParseSecrets("whsec_" + strings.TrimRight(key(32), "="))
	require.NoError(t, err, "unpadded base64 is accepted")

	for _, c := range []struct{ in, want string }{
		{"", "no signing secret"},
		{"   ", "no signing secret"},
		{key(32), `does not start with "whsec_"`},
		{"whsec_!!!notbase64", "not valid base64"},
		{"whsec_" + key(23), "decodes to 23 bytes; a secret must have 24 to 64"},
		{"whsec_" + key(65), "decodes to 65 bytes"},
		{good + " whsec_" + key(10), "signing secret 2 of 2: decodes to 10 bytes"},
		{good + " " + good, "signing secret 2 repeats secret 1"},
	} {
		_, err := signing.ParseSecrets(c.in)
		require.ErrorContains(t, err, c.want, "%q", c.in)
		require.NotContains(t, err.Error(), strings.TrimPrefix(good, "whsec_"), "an error never shows a secret")
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	a, b := newSecret(t), newSecret(t)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "whsec_"))
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	require.NoError(t, err)
	require.Len(t, raw, 32)
}

func TestSecretsNeverPrint(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	s := parse(t, secret)
	b64 := strings.TrimPrefix(secret, "whsec_")
	raw, _ := base64.StdEncoding.DecodeString(b64)
	wrapper := struct{ S *signing.Secrets }{s}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(format, s) + fmt.Sprintf(format, wrapper)
		require.NotContains(t, out, b64, format)
		require.NotContains(t, out, fmt.Sprintf("%x", raw), format)
		require.Contains(t, out, "redacted", format)
	}
}
