//go:build !pprof

// Package profiling serves Go's profiles in binaries built with -tags
// pprof, for performance work; in other builds it does nothing.
package profiling

// Serve does nothing: this binary was built without -tags pprof.
func Serve() {}
