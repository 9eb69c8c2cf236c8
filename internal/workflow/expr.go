package workflow

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

const (
	// maxExprSize bounds one expression, in code points. Expressions are
	// meant to be short; long logic belongs in a step.
	maxExprSize = 4096
	// maxComprehensionNesting bounds nested macros such as map inside
	// filter, whose cost grows as a power of the input size.
	maxComprehensionNesting = 3
	// maxRegexProgramSize bounds regular expressions, including ones that
	// come from data. A match cannot be interrupted and costs up to the
	// program size times the input length.
	maxRegexProgramSize = 500
	// interruptCheckFrequency is how many comprehension iterations pass
	// between checks of the context: a check costs a few nanoseconds, an
	// iteration over large values far more, and the time limit must end an
	// evaluation promptly.
	interruptCheckFrequency = 10
)

// MaxResultSize bounds, in bytes of JSON, the values one [Expr.Eval],
// [Template.Render] or similar call may produce. CEL values can share
// structure (a list holding the same large list a thousand times costs
// little to build) but converting them to JSON values copies it, so without
// this bound a cheap expression could exhaust memory.
const MaxResultSize = 8 << 20

// exprPattern matches a string that is exactly one expression. The group is
// the CEL source; it may span lines.
var exprPattern = regexp.MustCompile(`(?s)^\$\{\s*(.+?)\s*\}$`)

// celEnv is built once: it is immutable, safe for concurrent use, and costly
// enough to build that doing it per definition would dominate Parse.
//
// Besides the standard library it offers optional values and the math and
// base64 extensions. The string, list and set extensions, and the encoders'
// json and yaml functions, are left out on purpose: functions such as
// replace, join, lists.range, distinct and json.encode can allocate or loop
// without bound in a single call, before CEL charges their cost, so one
// expression could take a worker down.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("input", cel.DynType),
		cel.Variable("ctx", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("steps", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("item", cel.DynType),
		cel.Variable("index", cel.IntType),
		cel.Variable("iteration", cel.IntType),
		// JSON has one number type; data decoded from it may be int or
		// double, and ctx.total > 100 must work either way.
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.OptionalTypes(),
		ext.Math(),
		ext.Encoders(ext.EncodersVersion(0)),
		cel.ParserExpressionSizeLimit(maxExprSize),
		cel.RegexProgramSizeLimit(maxRegexProgramSize),
		cel.ASTValidators(
			cel.ValidateDurationLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateRegexLiterals(),
			cel.ValidateComprehensionNestingLimit(maxComprehensionNesting),
		),
	)
})

// Expr is a compiled CEL expression of a definition. It is safe for
// concurrent use.
//
// Expressions see the variables input (the run's input), ctx (the run's
// context object), steps (completed steps by name), run (metadata about the
// run), inside foreach steps only item and index, and inside loop steps
// only (their while included) iteration.
//
// Evaluation is bounded four ways: by the cost limit of each expression
// ([Limits.CostLimit]), by a time limit on each call that evaluates
// expressions ([Limits.EvalTimeout]; a Render of a whole template is one
// call), by [MaxResultSize], and by [MaxValueSize]. Exceeding any of them is
// an [*EvalError] wrapping [ErrCostLimitExceeded]. The memory evaluations
// use is bounded too (see budget.go).
type Expr struct {
	src  string // as written, "${ ... }"
	path string
	prog *program
	cfg  *evalConfig
}

// program is a compiled expression, planned twice: with the light cost
// limit, and, when first needed, with the definition's full limit.
type program struct {
	light cel.Program
	// full is nil when the light limit is the full one.
	full func() (cel.Program, error)
}

// evalConfig holds the evaluation limits all expressions of a definition
// share.
type evalConfig struct {
	timeout   time.Duration
	costLimit uint64
}

// evaluation is the state of one call that evaluates expressions: its
// context, with the time limit applied, the normalized activation, what
// remains of its result budget, and whether it is heavy (see budget.go).
type evaluation struct {
	parent    context.Context // the caller's
	ctx       context.Context // parent with the time limit
	cancel    context.CancelFunc
	deadline  time.Time
	limit     error // the cause of ctx's end at the deadline
	a         Activation
	budget    int
	costLimit uint64
	// release gives back the memory a heavy evaluation reserved; nil while
	// the evaluation is light.
	release func()
}

// heavy reports whether the evaluation has reserved its worst case.
func (ev *evaluation) heavy() bool { return ev.release != nil }

// begin starts an evaluation. The caller must call the returned function
// when done.
func begin(ctx context.Context, a Activation, cfg *evalConfig) (*evaluation, context.CancelFunc, error) {
	a, err := a.normalized()
	if err != nil {
		return nil, func() {}, err
	}
	timeout, costLimit := DefaultEvalTimeout, uint64(DefaultCostLimit)
	if cfg != nil { // nil for values built outside Parse
		timeout, costLimit = cfg.timeout, cfg.costLimit
	}
	ev := &evaluation{parent: ctx, a: a, budget: lightResultSize, costLimit: costLimit}
	ev.limit = fmt.Errorf("%w: evaluation took longer than %s", ErrCostLimitExceeded, timeout)
	ev.deadline = time.Now().Add(timeout)
	ev.ctx, ev.cancel = context.WithDeadlineCause(ctx, ev.deadline, ev.limit)
	return ev, func() {
		ev.cancel()
		if ev.release != nil {
			ev.release()
		}
	}, nil
}

// spend takes n bytes from the result budget. A light evaluation that
// outgrows its budget becomes heavy.
func (ev *evaluation) spend(n int) error {
	ev.budget -= n
	if ev.budget < 0 && !ev.heavy() {
		if err := ev.becomeHeavy(); err != nil {
			return err
		}
	}
	if ev.budget < 0 {
		return fmt.Errorf("%w: the result is larger than %d bytes", ErrCostLimitExceeded, MaxResultSize)
	}
	return nil
}

// becomeHeavy reserves the evaluation's worst case from the process's
// expression memory, waiting for it as long as the caller's context allows.
// The wait does not count against the time limit, which bounds the work of
// an evaluation: a busy process makes evaluations slower, never fail.
func (ev *evaluation) becomeHeavy() error {
	waiting := time.Now()
	release, err := evalMemory.Load().reserve(ev.parent, heavyReserve(ev.costLimit))
	if err != nil {
		return err
	}
	ev.release = release
	ev.budget += MaxResultSize - lightResultSize
	if waited := time.Since(waiting); waited > time.Millisecond {
		ev.cancel()
		ev.deadline = ev.deadline.Add(waited)
		ev.ctx, ev.cancel = context.WithDeadlineCause(ev.parent, ev.deadline, ev.limit)
	}
	return nil
}

// String returns the expression as written in the definition, "${ … }".
func (e *Expr) String() string { return e.src }

// Path returns the JSON Pointer of the expression in the definition.
func (e *Expr) Path() string { return e.path }

// Activation is the data an expression is evaluated with. Values are plain
// decoded JSON: map[string]any, []any, string, bool, nil, and numbers as
// float64, int64 or json.Number. Numbers whose value is an integer are seen
// by expressions as CEL ints, others as doubles (see [DecodeJSON]). Nil maps
// are seen as empty maps.
type Activation struct {
	Input any
	Ctx   map[string]any
	// Steps holds what completed steps expose, by step name.
	Steps map[string]any
	// Run holds metadata about the run: id, workflow, version, attempt.
	Run map[string]any
	// Item and Index are the current element of the innermost foreach and
	// its position; they are only meaningful inside a foreach.
	Item  any
	Index int64
	// Iteration is the innermost loop's iteration: in its while, the number
	// of iterations done so far; in its steps, the current iteration's
	// 0-based index. It is only meaningful inside a loop.
	Iteration int64
	// Decoded says that every value is already in the number model of
	// [DecodeJSON] (it was decoded by it, or built of strings and int64s),
	// so evaluations need not walk the values to normalise them: a run's
	// input of 10,000 elements is then not walked for every expression.
	Decoded bool
}

// normalized returns a with its values converted to the number model of
// [DecodeJSON], copying only what changes.
func (a Activation) normalized() (Activation, error) {
	if a.Decoded {
		for _, m := range []*map[string]any{&a.Ctx, &a.Steps, &a.Run} {
			if *m == nil {
				*m = map[string]any{}
			}
		}
		return a, nil
	}
	var err error
	if a.Input, _, err = normalize(a.Input); err != nil {
		return a, fmt.Errorf("input: %w", err)
	}
	if a.Ctx, err = normalizeMap(a.Ctx); err != nil {
		return a, fmt.Errorf("ctx: %w", err)
	}
	if a.Steps, err = normalizeMap(a.Steps); err != nil {
		return a, fmt.Errorf("steps: %w", err)
	}
	if a.Run, err = normalizeMap(a.Run); err != nil {
		return a, fmt.Errorf("run: %w", err)
	}
	if a.Item, _, err = normalize(a.Item); err != nil {
		return a, fmt.Errorf("item: %w", err)
	}
	return a, nil
}

func normalizeMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	v, _, err := normalize(m)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// celActivation exposes a normalized [Activation] to CEL without building a
// map per evaluation.
type celActivation struct{ a *Activation }

func (c celActivation) ResolveName(name string) (any, bool) {
	switch name {
	case "input":
		return c.a.Input, true
	case "ctx":
		return c.a.Ctx, true
	case "steps":
		return c.a.Steps, true
	case "run":
		return c.a.Run, true
	case "item":
		return c.a.Item, true
	case "index":
		return c.a.Index, true
	case "iteration":
		return c.a.Iteration, true
	}
	return nil, false
}

func (celActivation) Parent() interpreter.Activation { return nil }

// Eval evaluates the expression and returns its value as a JSON-compatible
// Go value: map[string]any, []any, string, bool, nil, int64 (or uint64 above
// the int64 range) and float64, with integral doubles as int64 like
// [DecodeJSON]. Timestamps become RFC 3339 strings in UTC, durations Go
// duration strings, bytes standard base64, and optional values their value
// or nil.
//
// Every failure, including a cancelled ctx and an exceeded limit, is an
// [*EvalError] naming the expression.
func (e *Expr) Eval(ctx context.Context, a Activation) (any, error) {
	ev, done, err := begin(ctx, a, e.cfg)
	defer done()
	if err != nil {
		return nil, e.fail(err)
	}
	return e.eval(ev)
}

// EvalBool evaluates an expression that must yield a bool.
func (e *Expr) EvalBool(ctx context.Context, a Activation) (bool, error) {
	ev, done, err := begin(ctx, a, e.cfg)
	defer done()
	if err != nil {
		return false, e.fail(err)
	}
	return e.evalBool(ev)
}

// EvalString evaluates an expression that must yield a string. An integer
// result is formatted in decimal, so that "${ ctx.order_id }" works as an
// event key whether the id is a number or a string.
func (e *Expr) EvalString(ctx context.Context, a Activation) (string, error) {
	v, err := e.Eval(ctx, a)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	default:
		return "", e.fail(fmt.Errorf("must evaluate to a string, got %s", jsonTypeName(v)))
	}
}

// EvalList evaluates an expression that must yield a list.
func (e *Expr) EvalList(ctx context.Context, a Activation) ([]any, error) {
	v, err := e.Eval(ctx, a)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, e.fail(fmt.Errorf("must evaluate to a list, got %s", jsonTypeName(v)))
	}
	return l, nil
}

// EvalTime evaluates an expression that must yield a CEL timestamp or an
// RFC 3339 string.
func (e *Expr) EvalTime(ctx context.Context, a Activation) (time.Time, error) {
	ev, done, err := begin(ctx, a, e.cfg)
	defer done()
	if err != nil {
		return time.Time{}, e.fail(err)
	}
	v, err := e.run(ev)
	if err != nil {
		return time.Time{}, err
	}
	switch v := v.(type) {
	case types.Timestamp:
		return v.Time.UTC(), nil
	case types.String:
		t, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return time.Time{}, e.fail(fmt.Errorf("must evaluate to a timestamp or an RFC 3339 string, got %s", quote(string(v))))
		}
		return t.UTC(), nil
	default:
		return time.Time{}, e.fail(fmt.Errorf("must evaluate to a timestamp or an RFC 3339 string, got %s", v.Type().TypeName()))
	}
}

func (e *Expr) evalBool(ev *evaluation) (bool, error) {
	v, err := e.run(ev)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, e.fail(fmt.Errorf("must evaluate to a bool, got %s", v.Type().TypeName()))
	}
	return bool(b), nil
}

func (e *Expr) eval(ev *evaluation) (any, error) {
	v, err := e.run(ev)
	if err != nil {
		return nil, err
	}
	out, err := fromCEL(v, ev)
	if err != nil {
		return nil, e.fail(err)
	}
	return out, nil
}

// run evaluates the program: first with the light cost limit unless the
// evaluation is heavy already, and again with the full limit, as a heavy
// evaluation, when the light limit was too low.
func (e *Expr) run(ev *evaluation) (ref.Val, error) {
	if e.prog.full == nil {
		return e.runProgram(ev, e.prog.light)
	}
	if !ev.heavy() {
		v, err := e.runProgram(ev, e.prog.light)
		if !errors.Is(err, ErrCostLimitExceeded) || ev.ctx.Err() != nil {
			return v, err
		}
		if err := ev.becomeHeavy(); err != nil {
			return nil, e.fail(err)
		}
	}
	full, err := e.prog.full()
	if err != nil {
		return nil, e.fail(err)
	}
	return e.runProgram(ev, full)
}

// runProgram evaluates prog. cel-go recovers panics in its own evaluator;
// the recover here also covers value adaptation and anything a future
// version does outside that guard, because an expression must never take
// the process down.
func (e *Expr) runProgram(ev *evaluation, prog cel.Program) (v ref.Val, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, e.fail(fmt.Errorf("internal error: %v", r))
		}
	}()
	if ev.ctx.Err() != nil {
		return nil, e.fail(context.Cause(ev.ctx))
	}
	v, _, err = prog.ContextEval(ev.ctx, celActivation{&ev.a})
	switch {
	case err == nil:
		return v, nil
	case ev.ctx.Err() != nil:
		// Interrupted: the cause says whether by the caller or by the
		// time limit, more clearly than CEL's wrapping does.
		return nil, e.fail(context.Cause(ev.ctx))
	}
	if cancel, ok := errors.AsType[interpreter.EvalCancelledError](err); ok && cancel.Cause == interpreter.CostLimitExceeded {
		err = fmt.Errorf("%w: more than %d cost units, or a string or bytes value larger than %d bytes", ErrCostLimitExceeded, ev.costLimit, MaxValueSize)
	}
	return nil, e.fail(err)
}

func (e *Expr) fail(err error) error {
	return &EvalError{Path: e.path, Expr: e.src, Err: err}
}

// fromCEL converts a CEL value to the JSON value model, charging the
// evaluation's result budget roughly the size of the value's JSON.
func fromCEL(v ref.Val, ev *evaluation) (any, error) {
	const scalarSize = 8
	switch v := v.(type) {
	case types.Null:
		return nil, ev.spend(scalarSize)
	case types.Bool:
		return bool(v), ev.spend(scalarSize)
	case types.Int:
		return int64(v), ev.spend(scalarSize)
	case types.Uint:
		if v <= math.MaxInt64 {
			return int64(v), ev.spend(scalarSize)
		}
		return uint64(v), ev.spend(scalarSize)
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("result %v cannot be represented in JSON", f)
		}
		return normalizeFloat(f), ev.spend(scalarSize)
	case types.String:
		return string(v), ev.spend(len(v) + 2)
	case types.Bytes:
		s := base64.StdEncoding.EncodeToString(v)
		return s, ev.spend(len(s) + 2)
	case types.Timestamp:
		return v.Time.UTC().Format(time.RFC3339Nano), ev.spend(32)
	case types.Duration:
		return v.Duration.String(), ev.spend(32)
	case *types.Err:
		return nil, v
	case *types.Optional:
		if !v.HasValue() {
			return nil, ev.spend(scalarSize)
		}
		return fromCEL(v.GetValue(), ev)
	case traits.Mapper:
		return mapFromCEL(v, ev)
	case traits.Lister:
		n, ok := v.Size().(types.Int)
		if !ok {
			return nil, errors.New("list of unknown size")
		}
		if err := ev.spend(int(n) + 2); err != nil {
			return nil, err
		}
		out := make([]any, 0, int(n))
		for it := v.Iterator(); it.HasNext() == types.True; {
			e, err := fromCEL(it.Next(), ev)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("a value of type %s cannot be represented in JSON", v.Type().TypeName())
	}
}

func mapFromCEL(m traits.Mapper, ev *evaluation) (any, error) {
	out := make(map[string]any)
	if err := ev.spend(2); err != nil {
		return nil, err
	}
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		var key string
		switch k := k.(type) {
		case types.String:
			key = string(k)
		case types.Int:
			key = strconv.FormatInt(int64(k), 10)
		case types.Uint:
			key = strconv.FormatUint(uint64(k), 10)
		default:
			return nil, fmt.Errorf("a map key of type %s cannot be represented in JSON", k.Type().TypeName())
		}
		if err := ev.spend(len(key) + 4); err != nil {
			return nil, err
		}
		e, err := fromCEL(m.Get(k), ev)
		if err != nil {
			return nil, err
		}
		out[key] = e
	}
	return out, nil
}

// jsonTypeName names the JSON type of a value of the JSON value model.
func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// jsonEqual reports whether two values of the JSON value model are equal as
// JSON: numbers by value, maps regardless of order.
func jsonEqual(x, y any) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case int64, uint64, float64:
		if xi, ok := x.(int64); ok {
			if yi, ok := y.(int64); ok {
				return xi == yi // exact, even beyond 2^53
			}
		}
		xf, _ := toFloat(x)
		yf, ok := toFloat(y)
		return ok && xf == yf
	default:
		return x == y
	}
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// exprType is what a field requires an expression to yield, checked against
// the type CEL infers at Parse time. Dynamic expressions pass the check and
// are checked again when evaluated.
type exprType int

const (
	anyType exprType = iota
	boolType
	listType
	keyType  // string or integer
	timeType // timestamp or RFC 3339 string
	stringType
)

func (t exprType) accepts(k types.Kind) bool {
	if k == types.DynKind || k == types.AnyKind {
		return true
	}
	switch t {
	case boolType:
		return k == types.BoolKind
	case listType:
		return k == types.ListKind
	case keyType:
		return k == types.StringKind || k == types.IntKind || k == types.UintKind
	case timeType:
		return k == types.TimestampKind || k == types.StringKind
	case stringType:
		return k == types.StringKind
	default:
		return true
	}
}

func (t exprType) String() string {
	switch t {
	case boolType:
		return "a bool"
	case listType:
		return "a list"
	case keyType:
		return "a string or an integer"
	case timeType:
		return "a timestamp or an RFC 3339 string"
	case stringType:
		return "a string"
	default:
		return "a value"
	}
}

// compiler compiles the expressions of one definition. Identical
// expressions in the same context share one program.
type compiler struct {
	env       *cel.Env
	costLimit uint64
	isStep    func(name string) bool
	cache     map[compileKey]compiled
}

type compileKey struct {
	code  string
	want  exprType
	scope scope
}

// scope says which of the variables that only some expressions may use an
// expression sees: item and index in the steps of a foreach, iteration in
// the while and the steps of a loop. Scopes nest: in a loop inside a
// foreach, all three are visible.
type scope struct {
	foreach bool
	loop    bool
}

// inForeach is the scope of the steps of a foreach in sc.
func (sc scope) inForeach() scope {
	sc.foreach = true
	return sc
}

// inLoop is the scope of the while and the steps of a loop in sc.
func (sc scope) inLoop() scope {
	sc.loop = true
	return sc
}

// refusal explains why an expression in sc may not use the variable name,
// or is "" when it may.
func (sc scope) refusal(name string) string {
	switch {
	case (name == "item" || name == "index") && !sc.foreach:
		return name + " is only available in the steps of a foreach"
	case name == "iteration" && !sc.loop:
		return "iteration is only available in the while and the steps of a loop"
	}
	return ""
}

type compiled struct {
	prog     *program
	messages []string
}

// compile compiles code, the source inside "${ }", and returns the program or
// the messages that explain why it is invalid.
func (c *compiler) compile(code string, want exprType, sc scope) (*program, []string) {
	key := compileKey{code, want, sc}
	if r, ok := c.cache[key]; ok {
		return r.prog, r.messages
	}
	prog, messages := c.compileUncached(code, want, sc)
	c.cache[key] = compiled{prog, messages}
	return prog, messages
}

func (c *compiler) compileUncached(code string, want exprType, sc scope) (prog *program, messages []string) {
	// A panic in CEL's compiler (cel-go v0.31 had one for every regular
	// expression with a repetition count) must make the definition
	// invalid, not fail the request that posted it.
	defer func() {
		if r := recover(); r != nil {
			prog, messages = nil, []string{fmt.Sprintf("the expression could not be compiled (internal error: %v)", r)}
		}
	}()
	if strings.TrimSpace(code) == "" {
		return nil, []string{"expression is empty"}
	}
	checked, iss := c.env.Compile(code)
	if iss != nil && iss.Err() != nil {
		if strings.Contains(code, "${") {
			// "${ a } and ${ b }" matches the expression pattern as the
			// single expression `a } and ${ b`; the syntax error that
			// results would hide what is really wrong.
			return nil, []string{wholeStringRule}
		}
		for _, e := range iss.Errors() {
			messages = append(messages, celMessage(e.Message, e.Location.Line(), e.Location.Column()))
		}
		return nil, messages
	}
	refs := refChecker{isStep: c.isStep, scope: sc, shadowed: map[string]int{}}
	refs.visit(checked.NativeRep().Expr())
	messages = refs.messages
	if k := checked.OutputType().Kind(); !want.accepts(k) {
		messages = append(messages, fmt.Sprintf("must evaluate to %s, but evaluates to %s", want, checked.OutputType()))
	}
	if len(messages) > 0 {
		return nil, messages
	}
	// The closure must not hold c: a definition keeps it.
	env, costLimit := c.env, c.costLimit
	plan := func(limit uint64) (cel.Program, error) {
		return env.Program(checked,
			cel.CostLimit(limit),
			cel.CostTracking(dynamicCosts{}),
			cel.InterruptCheckFrequency(interruptCheckFrequency),
		)
	}
	light, err := plan(min(costLimit, lightCostLimit))
	if err != nil {
		return nil, []string{err.Error()}
	}
	prog = &program{light: light}
	if costLimit > lightCostLimit {
		// Most expressions never need it: planning it when first needed
		// keeps posting a definition as fast as it was.
		prog.full = sync.OnceValues(func() (cel.Program, error) { return plan(costLimit) })
	}
	return prog, nil
}

func celMessage(msg string, line, column int) string {
	if line > 1 {
		return fmt.Sprintf("%s (line %d, column %d)", msg, line, column+1)
	}
	return fmt.Sprintf("%s (column %d)", msg, column+1)
}

// refChecker inspects a checked expression for references the type checker
// cannot catch: steps that do not exist, and variables used outside their
// scope (item or index outside a foreach, iteration outside a loop). It
// tracks comprehension variables, which shadow the variables of the same
// name.
type refChecker struct {
	isStep   func(string) bool
	scope    scope
	shadowed map[string]int
	messages []string
	reported map[string]bool
}

func (r *refChecker) report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.reported == nil {
		r.reported = map[string]bool{}
	}
	if !r.reported[msg] {
		r.reported[msg] = true
		r.messages = append(r.messages, msg)
	}
}

func (r *refChecker) isVar(e ast.Expr, name string) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == name && r.shadowed[name] == 0
}

func (r *refChecker) checkStep(name string) {
	if !r.isStep(name) {
		r.report("steps.%s refers to a step that does not exist", name)
	}
}

func (r *refChecker) visit(e ast.Expr) {
	switch e.Kind() {
	case ast.IdentKind:
		name := e.AsIdent()
		if msg := r.scope.refusal(name); msg != "" && r.shadowed[name] == 0 {
			r.report("%s", msg)
		}
	case ast.SelectKind:
		sel := e.AsSelect()
		if r.isVar(sel.Operand(), "steps") {
			r.checkStep(sel.FieldName())
		}
		r.visit(sel.Operand())
	case ast.CallKind:
		call := e.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case operators.Index, operators.OptIndex, operators.OptSelect:
			if len(args) == 2 && r.isVar(args[0], "steps") && args[1].Kind() == ast.LiteralKind {
				if name, ok := args[1].AsLiteral().(types.String); ok {
					r.checkStep(string(name))
				}
			}
		}
		if call.IsMemberFunction() {
			r.visit(call.Target())
		}
		for _, a := range args {
			r.visit(a)
		}
	case ast.ListKind:
		for _, el := range e.AsList().Elements() {
			r.visit(el)
		}
	case ast.MapKind:
		for _, entry := range e.AsMap().Entries() {
			me := entry.AsMapEntry()
			r.visit(me.Key())
			r.visit(me.Value())
		}
	case ast.StructKind:
		for _, f := range e.AsStruct().Fields() {
			r.visit(f.AsStructField().Value())
		}
	case ast.ComprehensionKind:
		comp := e.AsComprehension()
		r.visit(comp.IterRange())
		r.visit(comp.AccuInit())
		vars := []string{comp.IterVar(), comp.AccuVar()}
		if comp.HasIterVar2() {
			vars = append(vars, comp.IterVar2())
		}
		for _, v := range vars {
			r.shadowed[v]++
		}
		r.visit(comp.LoopCondition())
		r.visit(comp.LoopStep())
		r.visit(comp.Result())
		for _, v := range vars {
			r.shadowed[v]--
		}
	}
}

// matchExpr returns the CEL source of s if s is exactly one expression,
// "${ expr }".
func matchExpr(s string) (string, bool) {
	m := exprPattern.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// unescape resolves "$${" to a literal "${" in a string that is not an
// expression. Any other "${" is an error: it is almost certainly an attempt
// at string interpolation, which expressions do not do.
func unescape(s string) (string, bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			return "", false
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), true
}
