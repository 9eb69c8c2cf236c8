//go:build race

package workflow

// raceEnabled reports whether the race detector is on; it slows CEL
// compilation down about fifteenfold, which timing assertions allow for.
const raceEnabled = true
