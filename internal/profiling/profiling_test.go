package profiling_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/profiling"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

func TestServesProfiles(t *testing.T) {
	t.Parallel()
	s, err := profiling.Start("127.0.0.1:0", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	base := "http://" + s.Addr().String()

	status, body := get(t, base+"/debug/pprof/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "goroutine")
	status, _ = get(t, base+"/debug/pprof/goroutine?debug=1")
	require.Equal(t, http.StatusOK, status)
	status, _ = get(t, base+"/debug/pprof/cmdline")
	require.Equal(t, http.StatusNotFound, status, "the command line may hold secrets")
	status, _ = get(t, base+"/")
	require.Equal(t, http.StatusNotFound, status)

	require.NoError(t, s.Close())
	_, err = http.Get(base + "/debug/pprof/")
	require.Error(t, err, "closed")
}

func TestBusyAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = profiling.Start(ln.Addr().String(), slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "profiles: listen on "+ln.Addr().String())
}
