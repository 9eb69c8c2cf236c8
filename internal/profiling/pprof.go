//go:build pprof

// Package profiling serves Go's profiles in binaries built with -tags
// pprof, for performance work; in other builds it does nothing.
package profiling

import (
	"net/http"
	_ "net/http/pprof" // the profiling endpoints
	"os"
)

// Serve serves the profiles on DURABLE_PPROF_ADDR (for example
// 127.0.0.1:6060), when it is set.
func Serve() {
	if addr := os.Getenv("DURABLE_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
