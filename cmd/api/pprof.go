//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // the profiling endpoints, in binaries built with -tags pprof
	"os"
)

// A worker built with -tags pprof serves Go's profiles on
// DURABLE_PPROF_ADDR (for example 127.0.0.1:6060), for performance work.
func init() {
	if addr := os.Getenv("DURABLE_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
