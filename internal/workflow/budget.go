package workflow

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"golang.org/x/sync/semaphore"
)

// How expressions are kept from exhausting a process's memory.
//
// CEL charges a call's cost after the call has run, so a cost limit alone
// lets one call build a value as large as its arguments together, and a
// string doubled a few times is already tens of megabytes. Three bounds
// work together:
//
//   - No single string or bytes value an expression builds may be larger
//     than [MaxValueSize]: its call counts as exceeding the cost limit. So
//     the largest allocation one call can make before it is stopped is
//     twice that.
//   - Every string built or scanned costs one unit per ten bytes, also when
//     the operand types are only known at run time (CEL's own cost model
//     charges by overload, and calls on dynamic values such as anything
//     read from input have none until they run), so the cost limit bounds
//     the bytes built in one evaluation.
//   - Evaluations are light or heavy. Each starts light: its expressions run
//     with a cost limit of [lightCostLimit] and its results may take
//     [lightResultSize] bytes, which bounds what it can hold to well under a
//     megabyte, so any number of them may run at once. One that needs more
//     becomes heavy: it reserves its worst case ([heavyReserve]) from the
//     process's expression memory budget (see [SetEvalMemory]), waiting for
//     it if need be, and the expression that outgrew the light limit runs
//     again with the definition's full cost limit. Expressions are pure, so
//     running one again is safe; what it cost is at most the light limit.
//     How many heavy evaluations a process runs at once is thus bounded by
//     memory, whatever its concurrency.
const (
	// MaxValueSize bounds, in bytes, each string or bytes value an
	// expression builds. No step input, header or context member can hold
	// a larger one anyway.
	MaxValueSize = 1 << 20
	// lightCostLimit is the cost limit of an expression in a light
	// evaluation: enough for nearly every expression of real definitions,
	// small enough that a light evaluation builds at most about 100 KB.
	lightCostLimit = 10_000
	// lightResultSize is the result budget of a light evaluation: the size
	// of the largest step input.
	lightResultSize = 256 << 10
	// bytesPerCostUnit is how many bytes of string one cost unit may build.
	bytesPerCostUnit = 1 / cost.StringTraversalCostFactor
	// DefaultEvalMemory is the default of [SetEvalMemory].
	DefaultEvalMemory = 256 << 20
)

// heavyReserve is what a heavy evaluation reserves of the memory budget: its
// results, the strings its cost limit lets an expression build, and the one
// call that may overshoot it.
func heavyReserve(costLimit uint64) int64 {
	built := float64(costLimit) * bytesPerCostUnit
	if built > float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return MaxResultSize + 2*MaxValueSize + int64(built)
}

// memoryBudget is the process's budget for heavy evaluations.
type memoryBudget struct {
	size int64
	sem  *semaphore.Weighted
}

var evalMemory atomic.Pointer[memoryBudget]

func init() { SetEvalMemory(DefaultEvalMemory) }

// SetEvalMemory sets how many bytes the process's heavy expression
// evaluations may hold at once, together (default [DefaultEvalMemory]). A
// heavy evaluation that would pass it waits for others to end; one whose
// worst case alone is larger runs when it would be alone. Call it before
// evaluating anything: evaluations already holding memory release it to the
// budget they took it from.
func SetEvalMemory(bytes int64) {
	bytes = max(bytes, MaxResultSize)
	evalMemory.Store(&memoryBudget{size: bytes, sem: semaphore.NewWeighted(bytes)})
}

// reserve takes n bytes of the budget, waiting until they are free or ctx
// ends, and returns the function that gives them back.
func (b *memoryBudget) reserve(ctx context.Context, n int64) (func(), error) {
	n = min(n, b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, fmt.Errorf("waiting for expression memory: %w", context.Cause(ctx))
	}
	return func() { b.sem.Release(n) }, nil
}

// dynamicCosts charges calls by the runtime types of their arguments and
// bounds the size of the values they build (see the top of this file).
type dynamicCosts struct{}

var standardTrackers = cost.StandardOverloadTrackers()

var tooLarge = uint64(math.MaxUint64)

func (dynamicCosts) CallCost(function, overloadID string, args []ref.Val, result ref.Val) *uint64 {
	if valueBytes(result) > MaxValueSize {
		return &tooLarge
	}
	switch overloadID {
	case "base64_encode_bytes", "base64_decode_string":
		c := uint64(math.Ceil(float64(valueBytes(args[0])) * cost.StringTraversalCostFactor))
		return &c
	case "":
		if track, ok := standardTrackers[runtimeOverload(function, args)]; ok {
			return track(args, result)
		}
	}
	return nil
}

// runtimeOverload names the standard overload that a call dispatched at run
// time took, for the calls whose cost depends on their arguments' size.
func runtimeOverload(function string, args []ref.Val) string {
	if len(args) == 0 {
		return ""
	}
	var str, byts bool
	switch args[0].(type) {
	case types.String:
		str = true
	case types.Bytes:
		byts = true
	}
	pick := func(s, b string) string {
		switch {
		case str:
			return s
		case byts:
			return b
		}
		return ""
	}
	switch function {
	case operators.Add:
		if _, ok := args[0].(traits.Lister); ok {
			return overloads.AddList
		}
		return pick(overloads.AddString, overloads.AddBytes)
	case operators.Less:
		return pick(overloads.LessString, overloads.LessBytes)
	case operators.LessEquals:
		return pick(overloads.LessEqualsString, overloads.LessEqualsBytes)
	case operators.Greater:
		return pick(overloads.GreaterString, overloads.GreaterBytes)
	case operators.GreaterEquals:
		return pick(overloads.GreaterEqualsString, overloads.GreaterEqualsBytes)
	case operators.In:
		if len(args) == 2 {
			if _, ok := args[1].(traits.Lister); ok {
				return overloads.InList
			}
		}
	case overloads.Matches:
		return pick(overloads.Matches, "")
	case overloads.Contains:
		return pick(overloads.ContainsString, "")
	case overloads.StartsWith:
		return pick(overloads.StartsWithString, "")
	case overloads.EndsWith:
		return pick(overloads.EndsWithString, "")
	case overloads.TypeConvertString:
		return pick("", overloads.BytesToString)
	case overloads.TypeConvertBytes:
		return pick(overloads.StringToBytes, "")
	}
	return ""
}

// valueBytes is the size of a string or bytes value, and 0 for others.
func valueBytes(v ref.Val) int {
	switch v := v.(type) {
	case types.String:
		return len(v)
	case types.Bytes:
		return len(v)
	}
	return 0
}
