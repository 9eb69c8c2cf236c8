// Package sidehttp serves what a process shows beside its API — its
// metrics, its profiles — on a listener and an address of their own, so
// that they never share the API's address, authentication or exposure.
package sidehttp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves one handler until [Server.Close].
type Server struct {
	srv    *http.Server
	ln     net.Listener
	what   string
	served chan error
}

// Start listens on addr and serves h in the background; what names it in
// errors, and the server's own errors go to logger. The listener is open when
// Start returns, so a bad or busy address fails the program's start rather
// than going unnoticed. There is no WriteTimeout: a CPU profile answers
// only after the ?seconds= it was asked for.
func Start(addr, what string, h http.Handler, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		ln:     ln,
		what:   what,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving at once, ending requests in flight: what it serves
// is diagnostics, which must not hold up a program that stops.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	return nil
}
