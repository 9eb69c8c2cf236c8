// Package profiling serves Go's runtime profiles (net/http/pprof) for
// performance work, when DURABLE_PPROF_ADDR asks for them: on a listener
// and a mux of their own, so that they never share the API's address, its
// authentication or its exposure.
package profiling

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/durablehq/durable/internal/sidehttp"
)

// Start listens on addr and serves the profiles under /debug/pprof/ in the
// background, until the server is closed. The listener is open when Start
// returns, so a bad or busy address fails the program's start.
func Start(addr string, logger *slog.Logger) (*sidehttp.Server, error) {
	// A mux of this server's own: importing net/http/pprof also registers
	// the handlers on http.DefaultServeMux, which no server of Durable
	// serves. /debug/pprof/cmdline is left out: the command line may carry
	// -api-keys or -signing-secret.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s, err := sidehttp.Start(addr, "profiles", mux, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("serving Go profiles", "addr", s.Addr().String(), "path", "/debug/pprof/")
	return s, nil
}
