package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/config"
)

// TestHelpListsSettings checks that worker -h lists the worker's settings,
// not the API's.
func TestHelpListsSettings(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &out)
	require.ErrorIs(t, err, config.ErrHelp)
	for _, v := range []string{"DATABASE_URL", "DURABLE_WORKER_CONCURRENCY", "DURABLE_ALLOW_HOSTS", "DURABLE_METRICS_ADDR", "DURABLE_PPROF_ADDR", "-version"} {
		require.Contains(t, out.String(), v)
	}
	for _, v := range []string{"DURABLE_API_KEYS", "DURABLE_MAX_DEFINITION_BYTES", "migrate"} {
		require.NotContains(t, out.String(), v)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-version"}, func(string) string { return "" }, &out)
	require.ErrorIs(t, err, config.ErrVersion)
	require.Empty(t, out.String())
}
