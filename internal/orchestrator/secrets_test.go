package orchestrator

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/signing"
)

// TestLoadSecretsLogging checks which secret start-up logs show: the
// development secret only when asked to print it, a configured one never.
func TestLoadSecretsLogging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	load := func(configured string, print bool) (*signing.Secrets, string) {
		t.Helper()
		var logs bytes.Buffer
		secrets, err := LoadSecrets(ctx, db, configured, print, slog.New(slog.NewTextHandler(&logs, nil)))
		require.NoError(t, err)
		return secrets, logs.String()
	}

	_, logs := load("", false)
	require.Contains(t, logs, "no DURABLE_SIGNING_SECRET is configured")
	require.NotContains(t, logs, "whsec_")
	stored, err := db.Setting(ctx, signingSecretSetting, func() (string, error) { panic("the first load stored one") })
	require.NoError(t, err)

	_, logs = load("", true)
	require.Contains(t, logs, stored, "the same stored secret, printed")

	configured, err := signing.GenerateSecret()
	require.NoError(t, err)
	for _, print := range []bool{false, true} {
		secrets, logs := load(configured+" "+stored, print)
		require.NotContains(t, logs, "whsec_", "a configured secret is never logged")
		require.NotContains(t, logs, "DURABLE_SIGNING_SECRET")
		want, err := signing.ParseSecrets(configured + " " + stored)
		require.NoError(t, err)
		require.Equal(t, want, secrets)
	}
}

func TestLoadSecretsMalformed(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	_, err := LoadSecrets(context.Background(), pgtest.New(t), "whsec_not-base64!", true, slog.New(slog.NewTextHandler(&logs, nil)))
	require.ErrorContains(t, err, "DURABLE_SIGNING_SECRET")
	require.NotContains(t, err.Error(), "not-base64", "the value is not echoed")
	require.Empty(t, logs.String())
}
