package metrics

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/durablehq/durable/internal/sidehttp"
)

// Serve serves the metrics at /metrics on addr, in the background, until
// ctx ends: a worker has no API to serve them with. It returns once the
// address is listened on.
func (m *Metrics) Serve(ctx context.Context, addr string, logger *slog.Logger) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	s, err := sidehttp.Start(addr, "metrics", mux, logger)
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		if err := s.Close(); err != nil {
			logger.Warn("metrics server stopped", "error", err)
		}
	}()
	logger.Info("metrics listening", "addr", s.Addr().String())
	return s.Addr(), nil
}
