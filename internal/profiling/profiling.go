// Package profiling serves Go's runtime profiles (net/http/pprof) for
// performance work, when DURABLE_PPROF_ADDR asks for them: on a listener
// and a mux of their own, so that they never share the API's address, its
// authentication or its exposure.
package profiling

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Server serves the profiles until [Server.Close].
type Server struct {
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// Start listens on addr and serves the profiles under /debug/pprof/ in the
// background. The listener is open when Start returns, so a bad or busy
// address fails the program's start rather than going unnoticed.
func Start(addr string, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("profiles: listen on %s: %w", addr, err)
	}
	// A mux of this server's own: importing net/http/pprof also registers
	// the handlers on http.DefaultServeMux, which no server of Durable
	// serves. /debug/pprof/cmdline is left out: the command line may carry
	// -api-keys or -signing-secret.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &Server{
		// No WriteTimeout: a CPU profile or a trace answers only after the
		// ?seconds= it was asked for.
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	logger.Info("serving Go profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return s, nil
}

// Addr returns the address the profiles are served on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving at once, ending profiles in flight: they are
// diagnostics and must not hold up a program that stops.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	return nil
}
