package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(API, nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable", c.DatabaseURL)
	require.Equal(t, "127.0.0.1:8080", c.Addr)
	require.Equal(t, "http://127.0.0.1:8080", c.PublicBaseURL())
	require.Empty(t, c.APIKeyHashes)
	require.Equal(t, []string{"127.0.0.0/8", "::1"}, c.AllowHosts)
	require.Equal(t, time.Second, c.PollInterval)
	require.Equal(t, 30*time.Second, c.LeaseMargin)
	require.Equal(t, 1<<20, c.MaxDefinitionBytes)
	require.Equal(t, 256<<10, c.MaxInputBytes)
	require.Equal(t, 2<<20, c.MaxContextBytes)
	require.Equal(t, slog.LevelInfo, c.LogLevel)
	require.Positive(t, c.WorkerConcurrency)
	require.Equal(t, 1000, c.DefinitionLimits().MaxSteps)
	require.Equal(t, 256<<10, c.MaxOutputBytes)
	require.Equal(t, 10_000, c.MaxHistoryEvents)

	c, err = Load(Worker, nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 720*time.Hour, c.Retention)
	require.Equal(t, 10_000, c.MaxHistoryEvents)
}

func TestRetentionAndHistoryCap(t *testing.T) {
	t.Parallel()
	c, err := Load(Worker, nil, env(map[string]string{"DURABLE_RETENTION": "1s", "DURABLE_MAX_HISTORY_EVENTS": "10"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, time.Second, c.Retention, "short retentions are for tests")
	require.Equal(t, 10, c.MaxHistoryEvents)
	for _, bad := range []map[string]string{
		{"DURABLE_RETENTION": "999ms"}, {"DURABLE_RETENTION": "87601h"}, {"DURABLE_RETENTION": "30d"},
		{"DURABLE_MAX_HISTORY_EVENTS": "9"}, {"DURABLE_MAX_HISTORY_EVENTS": "1000000001"}, {"DURABLE_MAX_HISTORY_EVENTS": "many"},
	} {
		_, err := Load(Worker, nil, env(bad), &bytes.Buffer{})
		require.Error(t, err, "%v", bad)
	}
	_, err = Load(API, nil, env(map[string]string{"DURABLE_RETENTION": "nonsense"}), &bytes.Buffer{})
	require.NoError(t, err, "the API has no retention")
}

func TestFlagsWinOverEnvironment(t *testing.T) {
	t.Parallel()
	c, err := Load(Worker, []string{"-addr", "0.0.0.0:9999", "-poll-interval", "250ms"}, env(map[string]string{
		"DURABLE_ADDR": "127.0.0.1:7000", "DURABLE_POLL_INTERVAL": "5s", "DURABLE_PUBLIC_URL": "https://durable.example.com/",
		"DURABLE_ALLOW_HOSTS": "10.0.0.0/8, steps.internal",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:9999", c.Addr)
	require.Equal(t, 250*time.Millisecond, c.PollInterval)
	require.Equal(t, "https://durable.example.com", c.PublicBaseURL(), "a trailing slash is dropped")
	require.Equal(t, []string{"10.0.0.0/8", "steps.internal"}, c.AllowHosts)
}

func TestEveryProblemReported(t *testing.T) {
	t.Parallel()
	_, err := Load(API, nil, env(map[string]string{
		"DURABLE_ADDR": "nonsense", "DURABLE_PUBLIC_URL": "ftp://x", "DURABLE_LOG_FORMAT": "xml",
		"DURABLE_MAX_INPUT_BYTES": "-1", "DURABLE_EVAL_MEMORY": "lots", "DURABLE_API_KEYS": "short",
	}), &bytes.Buffer{})
	require.Error(t, err)
	for _, name := range []string{"DURABLE_ADDR", "DURABLE_PUBLIC_URL", "DURABLE_LOG_FORMAT", "DURABLE_MAX_INPUT_BYTES", "DURABLE_EVAL_MEMORY", "DURABLE_API_KEYS"} {
		require.Contains(t, err.Error(), name)
	}
	require.NotContains(t, err.Error(), "short", "a key's value must not be echoed")
}

func TestUnexpectedArguments(t *testing.T) {
	t.Parallel()
	_, err := Load(API, []string{"extra"}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "unexpected arguments")
}

// TestHelpListsOwnSettings checks that each program's -h lists the
// settings that apply to it and no other.
func TestHelpListsOwnSettings(t *testing.T) {
	t.Parallel()
	for _, program := range []Program{API, Worker} {
		var out bytes.Buffer
		_, err := Load(program, []string{"-h"}, env(nil), &out)
		require.ErrorIs(t, err, ErrHelp)
		for _, s := range settings {
			if s.programs&program != 0 {
				require.Contains(t, out.String(), "$"+s.env+")", "%s -h", program)
			} else {
				require.NotContains(t, out.String(), "$"+s.env+")", "%s -h", program)
				require.NotContains(t, out.String(), "-"+s.flag+" ", "%s -h", program)
			}
		}
		require.Contains(t, out.String(), "-version")
	}

	var api bytes.Buffer
	_, err := Load(API, []string{"-h"}, env(nil), &api)
	require.ErrorIs(t, err, ErrHelp)
	require.Contains(t, api.String(), "api migrate [flags]   apply pending database migrations and exit")
	for _, s := range []string{"DURABLE_API_KEYS", "DURABLE_MAX_DEFINITION_BYTES", "DURABLE_PPROF_ADDR"} {
		require.Contains(t, api.String(), s)
	}
	for _, s := range []string{"DURABLE_WORKER_CONCURRENCY", "DURABLE_ALLOW_HOSTS", "DURABLE_METRICS_ADDR"} {
		require.NotContains(t, api.String(), s)
	}
}

// TestHelpConcealsCredentials checks that -h shows no credential of the
// environment, which still applies, and that a flag still wins over it.
func TestHelpConcealsCredentials(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"DATABASE_URL":           "postgres://durable:hunter2-password@db.internal:5432/durable",
		"DURABLE_API_KEYS":       "a-long-enough-api-key-0123",
		"DURABLE_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	var out bytes.Buffer
	_, err := Load(API, []string{"-h"}, env(secrets), &out)
	require.ErrorIs(t, err, ErrHelp)
	for _, v := range []string{"hunter2", "a-long-enough-api-key", "whsec_MfKQ"} {
		require.NotContains(t, out.String(), v)
	}
	require.Contains(t, out.String(), `(default "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable")`, "the built-in default instead")

	c, err := Load(API, nil, env(secrets), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, secrets["DATABASE_URL"], c.DatabaseURL)
	require.Equal(t, secrets["DURABLE_SIGNING_SECRET"], c.SigningSecret)
	require.Equal(t, [][sha256.Size]byte{sha256.Sum256([]byte(secrets["DURABLE_API_KEYS"]))}, c.APIKeyHashes)

	c, err = Load(Worker, []string{"-database-url", "postgres://other@127.0.0.1/durable"}, env(secrets), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "postgres://other@127.0.0.1/durable", c.DatabaseURL, "the flag wins")
	require.Equal(t, secrets["DURABLE_SIGNING_SECRET"], c.SigningSecret)
	require.Empty(t, c.APIKeyHashes, "not the worker's")
}

// TestEverySettingAppliesSomewhere keeps a setting from being read by no
// program at all.
func TestEverySettingAppliesSomewhere(t *testing.T) {
	t.Parallel()
	for _, s := range settings {
		require.NotZero(t, s.programs&Both, s.env)
		require.Zero(t, s.programs&^Both, s.env)
	}
}

// TestOtherProgramsSettings checks that a program ignores the settings of
// the other, in the environment (one environment may serve both) and as
// flags, and keeps their defaults.
func TestOtherProgramsSettings(t *testing.T) {
	t.Parallel()
	c, err := Load(API, nil, env(map[string]string{
		"DURABLE_WORKER_CONCURRENCY": "nonsense", "DURABLE_METRICS_ADDR": "127.0.0.1:9091", "DURABLE_MAX_RESPONSE_BYTES": "7",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Empty(t, c.MetricsAddr)
	require.Equal(t, 1<<20, c.MaxResponseBytes)
	require.Positive(t, c.WorkerConcurrency)

	c, err = Load(Worker, nil, env(map[string]string{"DURABLE_API_KEYS": "short", "DURABLE_MAX_DEFINITION_STEPS": "3"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Empty(t, c.APIKeyHashes)
	require.Equal(t, 1000, c.DefinitionLimits().MaxSteps)

	_, err = Load(Worker, []string{"-api-keys", "a-long-enough-test-key"}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "flag provided but not defined: -api-keys")
	_, err = Load(API, []string{"-metrics-addr", "127.0.0.1:9091"}, env(nil), &bytes.Buffer{})
	require.ErrorContains(t, err, "flag provided but not defined: -metrics-addr")
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, program := range []Program{API, Worker} {
		var out bytes.Buffer
		_, err := Load(program, []string{"-version"}, env(map[string]string{"DURABLE_ADDR": "nonsense"}), &out)
		require.ErrorIs(t, err, ErrVersion, "-version wins over a bad setting")
		require.Empty(t, out.String())
	}
}

// TestObservabilityAddrs covers DURABLE_METRICS_ADDR and DURABLE_PPROF_ADDR:
// off by default, a host:port when set.
func TestObservabilityAddrs(t *testing.T) {
	t.Parallel()
	c, err := Load(Worker, nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Empty(t, c.MetricsAddr)
	require.Empty(t, c.PprofAddr)

	c, err = Load(Worker, []string{"-pprof-addr", "127.0.0.1:6060"}, env(map[string]string{"DURABLE_METRICS_ADDR": "127.0.0.1:9091", "DURABLE_PPROF_ADDR": "127.0.0.1:1"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9091", c.MetricsAddr)
	require.Equal(t, "127.0.0.1:6060", c.PprofAddr)

	c, err = Load(API, nil, env(map[string]string{"DURABLE_PPROF_ADDR": "localhost:0"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "localhost:0", c.PprofAddr)

	_, err = Load(Worker, nil, env(map[string]string{"DURABLE_METRICS_ADDR": "9091", "DURABLE_PPROF_ADDR": "http://127.0.0.1:6060"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "DURABLE_METRICS_ADDR (-metrics-addr): not a host:port")
	require.ErrorContains(t, err, "DURABLE_PPROF_ADDR (-pprof-addr): not a host:port")
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	key1, key2 := "first-key-0123456789", "second-key-0123456789"
	sum2 := sha256.Sum256([]byte(key2))
	c, err := Load(API, nil, env(map[string]string{"DURABLE_API_KEYS": key1 + " " + key2}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, [][sha256.Size]byte{sha256.Sum256([]byte(key1)), sum2}, c.APIKeyHashes)

	file := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(file, []byte("# team keys\n\n"+key1+"\nsha256:"+hex.EncodeToString(sum2[:])+"\n"), 0o600))
	c, err = Load(API, nil, env(map[string]string{"DURABLE_API_KEYS": "file:" + file}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, [][sha256.Size]byte{sha256.Sum256([]byte(key1)), sum2}, c.APIKeyHashes)

	for _, bad := range []string{"sha256:abc", "sha256:" + strings.Repeat("z", 64), "file:" + filepath.Join(t.TempDir(), "missing")} {
		_, err := Load(API, nil, env(map[string]string{"DURABLE_API_KEYS": bad}), &bytes.Buffer{})
		require.Error(t, err, bad)
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	c, err := Load(API, nil, env(map[string]string{"DURABLE_LOG_FORMAT": "json", "DURABLE_LOG_LEVEL": "warn"}), &bytes.Buffer{})
	require.NoError(t, err)
	var out bytes.Buffer
	logger := c.NewLogger(&out)
	logger.Info("hidden")
	logger.Warn("shown", "k", "v")
	require.NotContains(t, out.String(), "hidden")
	require.Contains(t, out.String(), `"msg":"shown"`)
}
