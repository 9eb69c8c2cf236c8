package workflow

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Limits bound what a definition may contain and what evaluating its
// expressions may cost. A zero field means the default from [DefaultLimits].
type Limits struct {
	// MaxBytes is the largest document accepted. Default 1 MiB.
	MaxBytes int
	// MaxDepth bounds the JSON nesting depth of the document; the top-level
	// object is depth 1. Each level of step nesting costs at least two
	// levels of JSON, so this bounds the nesting of steps too. Default 32.
	MaxDepth int
	// MaxSteps bounds the number of steps, nested ones included. Default 1000.
	MaxSteps int
	// MaxExpressions bounds the number of expressions. Compiling one takes
	// tens of microseconds, so without a bound a megabyte of tiny distinct
	// expressions would cost seconds of CPU. Default 10,000.
	MaxExpressions int
	// CostLimit bounds the evaluation cost of each expression, in CEL's cost
	// units (roughly one per operation or element visited, and one per ten
	// bytes of strings built or scanned). Default [DefaultCostLimit].
	CostLimit uint64
	// EvalTimeout bounds the time of each call that evaluates expressions:
	// one [Expr.Eval], or one [Template.Render] of a whole mapping. The cost
	// limit alone does not bound time well, because CEL's cost tracking
	// itself slows down as a comprehension runs. Default [DefaultEvalTimeout].
	EvalTimeout time.Duration
}

// The default bounds of a run's data, which the API and the worker enforce.
const (
	DefaultMaxInputBytes   = 256 << 10 // a run's input
	DefaultMaxOutputBytes  = 256 << 10 // a step's output, and a step's rendered input
	DefaultMaxContextBytes = 2 << 20   // a run's context
	// DefaultMaxHistoryEvents caps the events of a run's history (but
	// those of steps inside foreach items).
	DefaultMaxHistoryEvents = 10_000
)

// The bounds of a definition's retention: long enough that a mistake in a
// definition cannot delete the runs an operator is still looking at, and
// at most ten years.
const (
	MinRetention = time.Hour
	MaxRetention = 10 * 365 * 24 * time.Hour
)

// DefaultRetention is how long finished runs are kept when neither the
// deployment nor the workflow's definition says.
const DefaultRetention = 30 * 24 * time.Hour

// DefaultEvalTimeout is the default [Limits.EvalTimeout].
const DefaultEvalTimeout = time.Second

// DefaultCostLimit is the default [Limits.CostLimit]: enough for any
// reasonable mapping over a run's data, such as a map over a list of
// thousands of elements.
const DefaultCostLimit = 1_000_000

// DefaultLimits returns the limits the product documents (1 MiB, depth 32,
// 1000 steps), 10,000 expressions, [DefaultCostLimit] and
// [DefaultEvalTimeout].
func DefaultLimits() Limits {
	return Limits{
		MaxBytes: 1 << 20, MaxDepth: 32, MaxSteps: 1000, MaxExpressions: 10_000,
		CostLimit: DefaultCostLimit, EvalTimeout: DefaultEvalTimeout,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxSteps <= 0 {
		l.MaxSteps = d.MaxSteps
	}
	if l.MaxExpressions <= 0 {
		l.MaxExpressions = d.MaxExpressions
	}
	if l.CostLimit == 0 {
		l.CostLimit = d.CostLimit
	}
	if l.EvalTimeout <= 0 {
		l.EvalTimeout = d.EvalTimeout
	}
	return l
}

// Definition is a parsed and fully validated workflow definition. It is
// immutable and safe for concurrent use.
type Definition struct {
	Name        string
	Description string
	Steps       []*Step
	// Output maps the run's output; nil means the run's output is its last
	// step's output.
	Output *Template
	// Timeout bounds the whole run; zero means no run-level timeout.
	Timeout Duration
	// Schedule, when set, starts runs of the workflow on a calendar; it is
	// created or updated when the version is posted.
	Schedule *DefinitionSchedule
	// Retention is how long the workflow's finished runs are kept; zero
	// means the deployment's default (DURABLE_RETENTION).
	Retention Duration
	// Concurrency limits the workflow's active runs per key; the others
	// wait queued. Empty: no limit.
	Concurrency []ConcurrencyLimit
	// Debounce, when set, folds starts with the same key into one run.
	Debounce *Debounce

	canonical []byte
	hash      [32]byte
	byName    map[string]*Step
	places    map[string]place
	lanes     bool // see HasLanes
}

// Canonical returns the canonical JSON form of the document the definition
// was parsed from: object keys sorted bytewise, no insignificant whitespace,
// numbers exactly as written, strings with only the escapes JSON requires.
// Two documents that differ only in formatting and key order have the same
// canonical form. The caller must not modify the returned slice.
func (d *Definition) Canonical() []byte { return d.canonical }

// Hash returns the SHA-256 of [Definition.Canonical], which identifies a
// re-post of an identical document.
func (d *Definition) Hash() [32]byte { return d.hash }

// Step returns the step with the given name, wherever it is nested, or nil.
func (d *Definition) Step(name string) *Step { return d.byName[name] }

// ItemKeyPattern returns a regular expression, in the syntax both Go and
// PostgreSQL read, that matches the keys of the lanes of the definition's
// foreach items and of every step inside them ("ship[3]", "ship[3].label",
// "poll[0].ship[3].box[1].seal"), and no other key; "" when the definition
// has no foreach step. A run's history cap does not count these steps'
// events: a foreach's list, not the cap, bounds them.
func (d *Definition) ItemKeyPattern() string {
	var names []string
	d.Walk(func(_ string, s *Step) bool {
		if s.Foreach != nil {
			names = append(names, s.Name)
		}
		return true
	})
	if len(names) == 0 {
		return ""
	}
	// Step names are identifiers, unique in the definition, and a key's
	// segments are joined by "."; an item's lane adds "[index]".
	return `(^|\.)(` + strings.Join(names, "|") + `)\[`
}

// Walk calls fn for every step in document order, depth first: a step before
// the steps nested in it. path is the step's JSON Pointer, the same as
// [Step.Path]. If fn returns false, Walk skips the steps nested in that step
// and continues with the next one.
func (d *Definition) Walk(fn func(path string, s *Step) bool) {
	walkSteps(d.Steps, fn)
}

func walkSteps(steps []*Step, fn func(string, *Step) bool) {
	for _, s := range steps {
		if !fn(s.Path, s) {
			continue
		}
		for _, nested := range s.Children() {
			walkSteps(nested, fn)
		}
	}
}

// DefinitionSchedule is the schedule a definition declares.
type DefinitionSchedule struct {
	Cron          string
	Timezone      string // an IANA zone; default UTC
	Input         []byte // canonical JSON; nil for none
	OverlapPolicy string // see the Overlap constants; default allow
	CatchupWindow Duration
}

// StepType discriminates the kinds of [Step].
type StepType string

// The step types.
const (
	StepCall         StepType = "call"
	StepBranch       StepType = "branch"
	StepParallel     StepType = "parallel"
	StepForeach      StepType = "foreach"
	StepLoop         StepType = "loop"
	StepSleep        StepType = "sleep"
	StepWaitForEvent StepType = "wait_for_event"
	StepWaitForInput StepType = "wait_for_input"
	StepCallWorkflow StepType = "call_workflow"
)

var stepTypes = []string{
	string(StepCall), string(StepBranch), string(StepParallel), string(StepForeach), string(StepLoop),
	string(StepSleep), string(StepWaitForEvent), string(StepWaitForInput), string(StepCallWorkflow),
}

// Step is one step of a definition. Exactly one of the type-specific fields
// is set, the one that Type names; the others are nil.
type Step struct {
	Name        string
	Type        StepType
	Description string
	// Path is the JSON Pointer of the step in the document, such as
	// "/steps/1/cases/0/steps/2".
	Path string

	Call         *CallStep
	Branch       *BranchStep
	Parallel     *ParallelStep
	Foreach      *ForeachStep
	Loop         *LoopStep
	Sleep        *SleepStep
	WaitForEvent *WaitForEventStep
	WaitForInput *WaitForInputStep
	CallWorkflow *CallWorkflowStep
}

// Children returns the step lists nested directly in s, in document order:
// a branch's cases then its default, a parallel step's branches, a foreach
// or loop step's body. It returns nil for the other types.
func (s *Step) Children() [][]*Step {
	switch {
	case s.Branch != nil:
		var out [][]*Step
		for _, c := range s.Branch.Cases {
			out = append(out, c.Steps)
		}
		if s.Branch.Default != nil {
			out = append(out, s.Branch.Default)
		}
		return out
	case s.Parallel != nil:
		out := make([][]*Step, len(s.Parallel.Branches))
		for i, b := range s.Parallel.Branches {
			out[i] = b.Steps
		}
		return out
	case s.Foreach != nil:
		return [][]*Step{s.Foreach.Steps}
	case s.Loop != nil:
		return [][]*Step{s.Loop.Steps}
	default:
		return nil
	}
}

// Request is an outbound HTTP call: the fields a call step and its
// compensation share. Defaults are already applied.
type Request struct {
	// URL is an absolute http or https URL without a fragment.
	URL string
	// Method is GET, POST, PUT, PATCH or DELETE; default POST.
	Method string
	// Headers maps header names, as written, to their values. Names are
	// unique regardless of case and never one the engine sets itself.
	Headers map[string]Text
	// Timeout bounds one attempt; default 30s, at most 15m.
	Timeout Duration
	Retry   RetryPolicy
	// Input is the mapping rendered into the request's "input"; nil when
	// the definition gives none.
	Input *Template

	cfg *evalConfig
}

// RenderHeaders evaluates the header values. A value that evaluates to a
// non-string, or to a string that is not a valid header value (one
// containing a control character other than tab), is an error.
func (r *Request) RenderHeaders(ctx context.Context, a Activation) (map[string]string, error) {
	if len(r.Headers) == 0 {
		return nil, nil
	}
	ev, done, err := begin(ctx, a, r.cfg)
	defer done()
	if err != nil {
		return nil, fmt.Errorf("render headers: %w", err)
	}
	out := make(map[string]string, len(r.Headers))
	for name, v := range r.Headers {
		s, err := v.render(ev)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		if !validHeaderValue(s) {
			return nil, fmt.Errorf("header %s: value contains a control character", name)
		}
		out[name] = s
	}
	return out, nil
}

// CallStep invokes an HTTP endpoint; see the step protocol in the design.
type CallStep struct {
	Request
	// CallbackTimeout bounds how long a step answered with 202 Accepted may
	// wait for its callback; default 24h.
	CallbackTimeout Duration
	// Compensate is called, in reverse order of completion, when a later
	// failure makes the run compensate; nil when the step has none.
	Compensate *Request
	// Concurrency limits the step's attempts in flight per key, across all
	// runs; RateLimit limits how often they are made. Both are checked
	// before an attempt is made, and waiting for them uses no attempt.
	Concurrency []ConcurrencyLimit
	RateLimit   *RateLimit
}

// RetryPolicy says how a failed attempt is retried. Parse fills in every
// default, so the fields are always the effective policy.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt too: 1 means no retry. Default 10.
	MaxAttempts int
	// InitialInterval is the delay before the first retry. Default 1s.
	InitialInterval Duration
	// BackoffCoefficient multiplies the delay after each retry. Default 2.
	BackoffCoefficient float64
	// MaxInterval caps the delay. Default 100 × InitialInterval.
	MaxInterval Duration
	// NonRetryableStatuses are HTTP statuses that fail the step at once,
	// even those otherwise retried (408, 429, 5xx).
	NonRetryableStatuses []int
}

// Backoff returns the delay before retry number n (n ≥ 1 is the retry after
// attempt n), before jitter: InitialInterval × BackoffCoefficient^(n-1),
// capped at MaxInterval.
func (p RetryPolicy) Backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(p.InitialInterval) * math.Pow(p.BackoffCoefficient, float64(n-1))
	if math.IsNaN(d) || d >= float64(p.MaxInterval) {
		return time.Duration(p.MaxInterval)
	}
	return time.Duration(d)
}

// BranchStep runs the steps of the first matching case, or Default.
type BranchStep struct {
	// On is compared with the values of value cases; nil when the
	// definition gives none, in which case every case has If.
	On    *Expr
	Cases []*BranchCase
	// Default runs when no case matches; nil when the definition gives none,
	// in which case the branch does nothing.
	Default []*Step

	cfg *evalConfig
}

// BranchCase is one case of a [BranchStep]: a value case when If is nil
// (Value may then be nil, for a JSON null), otherwise a condition case.
type BranchCase struct {
	Value any
	If    *Expr
	Steps []*Step
}

// Select evaluates the branch and returns the index of the matching case
// and its steps; for no match, it returns -1 and Default. Cases are tried in
// order; On is evaluated at most once, and only if a value case is reached.
// Values are equal when they are equal as JSON (1 and 1.0 are equal).
func (b *BranchStep) Select(ctx context.Context, a Activation) (int, []*Step, error) {
	ev, done, err := begin(ctx, a, b.cfg)
	defer done()
	if err != nil {
		return 0, nil, fmt.Errorf("select branch: %w", err)
	}
	var on any
	evaluated := false
	for i, c := range b.Cases {
		if c.If != nil {
			ok, err := c.If.evalBool(ev)
			if err != nil {
				return 0, nil, err
			}
			if ok {
				return i, c.Steps, nil
			}
			continue
		}
		if !evaluated {
			if on, err = b.On.eval(ev); err != nil {
				return 0, nil, err
			}
			evaluated = true
		}
		if jsonEqual(on, c.Value) {
			return i, c.Steps, nil
		}
	}
	return -1, b.Default, nil
}

// ParallelStep runs its branches concurrently.
type ParallelStep struct {
	Branches []*ParallelBranch
	Merge    Merge
	// OnError is ErrorFailFast (default) or ErrorCompleteAll.
	OnError ErrorPolicy
}

// ParallelBranch is one named branch of a [ParallelStep]. Names are unique
// within their parallel step.
type ParallelBranch struct {
	Name  string
	Steps []*Step
}

// Merge says how the outputs of parallel branches are combined.
type Merge string

const (
	// MergeObject makes the output an object with one member per branch,
	// named after the branch. The default.
	MergeObject Merge = "object"
	// MergeDeepMerge merges the branches' object outputs into one object.
	MergeDeepMerge Merge = "deep_merge"
)

// ErrorPolicy says what a parallel or foreach step does when part of it
// fails.
type ErrorPolicy string

const (
	// ErrorFailFast fails the step at the first failure, cancelling the
	// rest. The default for parallel and foreach steps.
	ErrorFailFast ErrorPolicy = "fail_fast"
	// ErrorCompleteAll lets every parallel branch finish before the step
	// fails.
	ErrorCompleteAll ErrorPolicy = "complete_all"
	// ErrorContinue skips a failed foreach item and carries on.
	ErrorContinue ErrorPolicy = "continue"
	// ErrorCollect carries on and gathers the foreach items' errors in the
	// step's output.
	ErrorCollect ErrorPolicy = "collect"
)

// ForeachStep runs Steps once per element of Items. Inside, expressions
// may use the variables item and index.
type ForeachStep struct {
	// Items must evaluate to a list; see [Expr.EvalList].
	Items *Expr
	Steps []*Step
	Mode  ForeachMode
	// Concurrency is how many items run at once: 1 for ForeachSequential,
	// default 10 for ForeachConcurrent.
	Concurrency int
	// CollectAs, when not empty, is the context key the items' outputs are
	// gathered under.
	CollectAs string
	// OnError is ErrorFailFast (default), ErrorContinue or ErrorCollect.
	OnError ErrorPolicy
}

// ForeachMode says whether foreach items run one after another or at once.
type ForeachMode string

const (
	ForeachSequential ForeachMode = "sequential"
	ForeachConcurrent ForeachMode = "concurrent"
)

// LoopStep runs Steps again and again, one iteration after another, while
// While holds, at most MaxIterations times. While is evaluated before each
// iteration, the first included, so a loop may run no iteration at all.
// While and the expressions of Steps may use the variable iteration: in
// While the number of iterations done so far (the 0-based index of the
// iteration about to start), in Steps the 0-based index of the current
// iteration. While sees the outputs of the previous iteration's steps as
// steps.NAME (before the first iteration they have none). The loop's output
// is its last iteration's output, the output of its last step; null when
// it ran no iteration. Running MaxIterations iterations ends the loop
// successfully, whatever While says.
type LoopStep struct {
	// While must evaluate to a bool.
	While *Expr
	// MaxIterations is from 1 to 10,000.
	MaxIterations int
	Steps         []*Step
}

// Continue reports whether the loop starts another iteration: false once
// a.Iteration, the number of iterations done so far, has reached
// MaxIterations (without evaluating While), otherwise While evaluated with
// a. a.Steps should hold the outputs of the previous iteration's steps, and
// of the steps before the loop; a.Item and a.Index those of the enclosing
// foreach item, if any. A While that fails or does not yield a bool is an
// [*EvalError].
func (l *LoopStep) Continue(ctx context.Context, a Activation) (bool, error) {
	if a.Iteration < 0 {
		return false, fmt.Errorf("loop: iteration %d is negative", a.Iteration)
	}
	if a.Iteration >= int64(l.MaxIterations) {
		return false, nil
	}
	return l.While.EvalBool(ctx, a)
}

// SleepStep waits for Duration, or until the time Until or UntilTime gives;
// exactly one of the three is set.
type SleepStep struct {
	Duration  Duration
	Until     *Expr
	UntilTime time.Time
}

// WakeAt returns when a sleep that starts at now ends.
func (s *SleepStep) WakeAt(ctx context.Context, now time.Time, a Activation) (time.Time, error) {
	switch {
	case s.Duration > 0:
		return now.Add(time.Duration(s.Duration)), nil
	case s.Until != nil:
		return s.Until.EvalTime(ctx, a)
	default:
		return s.UntilTime, nil
	}
}

// WaitForEventStep waits for one event, or any or all of several.
type WaitForEventStep struct {
	Mode EventMode
	// Events has exactly one element for EventOne, 1 to 100 otherwise.
	Events []EventMatch
	// Timeout bounds the wait; zero means the engine's default applies.
	Timeout   Duration
	OnTimeout Action
	// Lookback is how old an event published before the wait began may be
	// and still match (default 5m); zero means only events published after.
	Lookback Duration
}

// EventMode says how many of a [WaitForEventStep]'s events must arrive.
type EventMode string

const (
	EventOne EventMode = "one" // the single "event" and "key" form
	EventAny EventMode = "any"
	EventAll EventMode = "all"
)

// EventMatch selects events by name and correlation key. Key evaluates to
// a string or an integer; see [Expr.EvalString].
type EventMatch struct {
	Event string
	Key   *Expr
}

// Action is what a wait does when it times out or its approval is rejected.
type Action string

const (
	ActionFail     Action = "fail" // the default
	ActionContinue Action = "continue"
)

// WaitForInputStep waits for a person's input.
type WaitForInputStep struct {
	Kind   InputKind
	Prompt string
	// Options are the choices of InputChoice, unique and non-empty.
	Options []string
	// Schema is the canonical JSON of the form schema of InputForm, for
	// describing the wait to a user interface.
	Schema []byte
	// Timeout bounds the wait; zero means the engine's default applies.
	Timeout   Duration
	OnTimeout Action
	// OnReject is what a rejected InputApproval does; ActionFail otherwise.
	OnReject Action

	schema *jsonschema.Schema
}

// InputKind is the kind of input a [WaitForInputStep] asks for.
type InputKind string

const (
	InputApproval InputKind = "approval" // true or false
	InputChoice   InputKind = "choice"   // one of the options
	InputText     InputKind = "text"     // a string
	InputForm     InputKind = "form"     // an object valid against the schema
)

// CallWorkflowStep starts a child run.
type CallWorkflowStep struct {
	Workflow string
	// Version pins the child's version; zero means the latest.
	Version int
	Input   *Template
	// Wait makes the step wait for the child's result; default true.
	Wait bool
	// Timeout bounds the wait for the child; zero means the engine's
	// default applies. Only set when Wait is true.
	Timeout Duration
}

// Duration is a time.Duration written in JSON as a Go duration string, such
// as "30s" or "1h30m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText formats d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string. Unlike [Parse] it accepts any
// value time.ParseDuration accepts, including zero and negative ones.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

func newDefinition() *Definition {
	return &Definition{byName: make(map[string]*Step)}
}

func (d *Definition) seal(canonical []byte) {
	d.canonical = canonical
	d.hash = sha256.Sum256(canonical)
	d.places = map[string]place{}
	buildPlaces(d.Steps, nil, 0, d.places)
	d.Walk(func(_ string, s *Step) bool {
		d.lanes = d.lanes || s.OpensLanes()
		return true
	})
}
