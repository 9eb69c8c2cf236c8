// Package version is the version of Durable's programs: one number for the
// api and the worker, reported by their -version flag and in the
// User-Agent of step requests.
package version

import (
	"fmt"
	"runtime"
)

// Version is Durable's release, in semantic versioning.
const Version = "0.1.0"

// Line is what program's -version prints: the program, Durable's version
// and the Go release it was built with, such as
// "durable api 0.1.0 (go1.26.8)".
func Line(program string) string {
	return fmt.Sprintf("durable %s %s (%s)", program, Version, runtime.Version())
}

// UserAgent is the User-Agent of step requests: "Durable/" and [Version].
func UserAgent() string { return "Durable/" + Version }
