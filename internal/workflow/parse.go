package workflow

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/durablehq/durable/internal/cron"
)

var (
	workflowNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,127}$`)
	// identPattern is the shape of step, branch and collect_as names: a CEL
	// identifier, so that steps.name works in expressions.
	identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

const (
	workflowNameRule = "must be 1 to 128 lowercase letters, digits, \"_\" or \"-\", starting with a letter or digit"
	identRule        = "must be 1 to 64 letters, digits or \"_\", not starting with a digit"

	defaultCallTimeout     = 30 * time.Second
	maxCallTimeout         = 15 * time.Minute
	defaultCallbackTimeout = 24 * time.Hour
	maxLookback            = 168 * time.Hour
	defaultLookback        = 5 * time.Minute
	defaultConcurrency     = 10
	maxConcurrency         = 1000
	maxEvents              = 100
	maxOptions             = 100
	maxEventNameLen        = 256
	maxLoopIterations      = 10_000
)

// defaultRetry is Temporal's default policy, which the design adopts.
var defaultRetry = RetryPolicy{
	MaxAttempts:        10,
	InitialInterval:    Duration(time.Second),
	BackoffCoefficient: 2,
}

// reservedHeaders are set by the engine on every step request (or by the
// HTTP client) and may not be overridden by a definition: letting a
// definition set webhook-* or Idempotency-Key would let it forge what
// endpoints rely on, and the hop-by-hop headers would confuse the transport.
var reservedHeaders = map[string]bool{
	"host": true, "content-length": true, "content-type": true, "transfer-encoding": true,
	"connection": true, "idempotency-key": true, "user-agent": true, "traceparent": true,
	"tracestate": true, "keep-alive": true, "proxy-connection": true, "te": true,
	"trailer": true, "upgrade": true,
}

// Parse decodes and validates a definition document completely and compiles
// every expression. On invalid input it returns a [*ValidationError] listing
// every problem found, each with the JSON Pointer of the offending value;
// any other error means the package itself is broken.
//
// Zero fields of limits take their defaults (see [DefaultLimits]). The
// document must be at most limits.MaxBytes long, valid UTF-8, a single JSON
// object without duplicate keys, nested at most limits.MaxDepth deep, and
// contain no string with a NUL character.
func Parse(doc []byte, limits Limits) (*Definition, error) {
	limits = limits.withDefaults()
	if len(doc) > limits.MaxBytes {
		return nil, &ValidationError{Problems: []Problem{{
			Path:    "",
			Message: fmt.Sprintf("document is %d bytes, more than the limit of %d bytes", len(doc), limits.MaxBytes),
		}}}
	}
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("parse workflow: build expression environment: %w", err)
	}
	p := &parser{
		limits:    limits,
		cfg:       &evalConfig{timeout: limits.EvalTimeout, costLimit: limits.CostLimit},
		def:       newDefinition(),
		stepPaths: make(map[string]string),
	}
	root := decodeDocument(doc, limits.MaxDepth, &p.ps)
	if root != nil {
		p.definition(root)
		c := &compiler{
			env:       env,
			costLimit: limits.CostLimit,
			isStep:    func(name string) bool { _, ok := p.stepPaths[name]; return ok },
			cache:     make(map[compileKey]compiled),
		}
		// Expressions are compiled last, once every step name is known,
		// because an expression may refer to a step defined after it.
		for _, pe := range p.exprs {
			if p.ps.full {
				break // nothing more could be reported
			}
			prog, messages := c.compile(pe.code, pe.want, pe.scope)
			for _, m := range messages {
				p.ps.add(pe.expr.path, "%s", m)
			}
			pe.expr.prog = prog
		}
	}
	if len(p.ps.list) > 0 {
		return nil, &ValidationError{Problems: p.ps.list}
	}
	p.def.seal(root.appendCanonical(make([]byte, 0, len(doc))))
	return p.def, nil
}

type parser struct {
	limits    Limits
	cfg       *evalConfig
	ps        problems
	def       *Definition
	stepPaths map[string]string // step name → path of the step that first used it
	stepCount int
	exprCount int
	exprs     []pendingExpr // to compile once every step name is known
}

type pendingExpr struct {
	expr  *Expr
	code  string
	want  exprType
	scope scope
}

// object reads the members of a JSON object, remembering which were read so
// that finish can report the others as unknown.
type object struct {
	p    *parser
	n    *node
	path string
	used []bool
}

// object returns a reader for n, or nil after recording a problem if n is
// not an object.
func (p *parser) object(n *node, path string) *object {
	if n.kind != jsonObject {
		p.ps.add(path, "must be an object, not %s", n.kind)
		return nil
	}
	return &object{p: p, n: n, path: path, used: make([]bool, len(n.members))}
}

// get returns the member key and its path; the node is nil when absent.
func (o *object) get(key string) (*node, string) {
	for i, m := range o.n.members {
		if m.key == key {
			o.used[i] = true
			return m.val, pointer(o.path, key)
		}
	}
	return nil, pointer(o.path, key)
}

// require is get, recording a problem when the member is absent.
func (o *object) require(key string) (*node, string) {
	n, path := o.get(key)
	if n == nil {
		o.p.ps.add(path, "is required")
	}
	return n, path
}

func (o *object) has(key string) bool {
	return o.n.field(key) != nil
}

// finish reports every member that was not read as unknown.
func (o *object) finish() {
	for i, m := range o.n.members {
		if !o.used[i] {
			o.p.ps.add(pointer(o.path, m.key), "unknown field %s", quote(m.key))
		}
	}
}

// skip marks every member as read, for an object whose shape is unknown
// because its type is.
func (o *object) skip() {
	for i := range o.used {
		o.used[i] = true
	}
}

func (p *parser) definition(root *node) {
	o := p.object(root, "")
	if o == nil {
		return
	}
	if n, path := o.require("name"); n != nil {
		if s, ok := p.str(n, path); ok {
			if !workflowNamePattern.MatchString(s) {
				p.ps.add(path, "%s", workflowNameRule)
			}
			p.def.Name = s
		}
	}
	p.def.Description = o.optString("description")
	if n, path := o.require("steps"); n != nil {
		p.def.Steps = p.steps(n, path, scope{})
	}
	if n, path := o.get("output"); n != nil {
		p.def.Output = p.template(n, path, scope{})
	}
	p.def.Timeout = o.optDuration("timeout", 0)
	if n, path := o.get("retention"); n != nil {
		if d, ok := p.duration(n, path, false); ok {
			if d < Duration(MinRetention) || d > Duration(MaxRetention) {
				p.ps.add(path, "must be from %s to %s", MinRetention, MaxRetention)
			}
			p.def.Retention = d
		}
	}
	if n, path := o.get("schedule"); n != nil {
		p.def.Schedule = p.schedule(n, path)
	}
	if n, path := o.get("concurrency"); n != nil {
		p.def.Concurrency = p.concurrency(n, path, scope{})
	}
	if n, path := o.get("debounce"); n != nil {
		p.def.Debounce = p.debounce(n, path)
	}
	o.finish()
}

// schedule parses the schedule a definition declares.
func (p *parser) schedule(n *node, path string) *DefinitionSchedule {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	s := &DefinitionSchedule{Timezone: "UTC", OverlapPolicy: OverlapAllow}
	if n, path := o.require("cron"); n != nil {
		if v, ok := p.str(n, path); ok {
			s.Cron = v
		}
	}
	if n, path := o.get("timezone"); n != nil {
		if v, ok := p.str(n, path); ok {
			s.Timezone = v
		}
	}
	if n, _ := o.get("input"); n != nil {
		s.Input = n.appendCanonical(nil)
	}
	if n, path := o.get("overlap_policy"); n != nil {
		if v, ok := p.enum(n, path, OverlapAllow, OverlapSkip, OverlapBufferOne, OverlapCancelOther); ok {
			s.OverlapPolicy = v
		}
	}
	if n, path := o.get("catchup_window"); n != nil {
		if d, ok := p.duration(n, path, true); ok {
			s.CatchupWindow = d
		}
	}
	if s.Cron != "" {
		if _, err := cron.Parse(s.Cron, s.Timezone); err != nil {
			field := "/cron"
			if strings.Contains(err.Error(), "time zone") {
				field = "/timezone"
			}
			p.ps.add(path+field, "%s", err)
		}
	}
	o.finish()
	return s
}

// steps parses a non-empty array of steps. Each level of step nesting costs
// at least two levels of JSON nesting, so the document's depth limit also
// bounds how deep steps nest.
func (p *parser) steps(n *node, path string, sc scope) []*Step {
	elems, ok := p.array(n, path)
	if !ok {
		return nil
	}
	if len(elems) == 0 {
		p.ps.add(path, "must contain at least one step")
		return nil
	}
	out := make([]*Step, 0, len(elems))
	for i, e := range elems {
		if s := p.step(e, pointerAt(path, i), sc); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) step(n *node, path string, sc scope) *Step {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	p.stepCount++
	if p.stepCount == p.limits.MaxSteps+1 {
		p.ps.add(path, "the definition has more than %d steps", p.limits.MaxSteps)
	}
	s := &Step{Path: path}
	if n, npath := o.require("name"); n != nil {
		if name, ok := p.str(n, npath); ok {
			s.Name = name
			if !identPattern.MatchString(name) {
				p.ps.add(npath, "%s", identRule)
			}
			if first, dup := p.stepPaths[name]; dup {
				p.ps.add(npath, "duplicate step name %s, first used by the step at %s", quote(name), first)
			} else {
				p.stepPaths[name] = path
				p.def.byName[name] = s
			}
		}
	}
	if n, tpath := o.require("type"); n != nil {
		if t, ok := p.enum(n, tpath, stepTypes...); ok {
			s.Type = StepType(t)
		}
	}
	s.Description = o.optString("description")
	switch s.Type {
	case StepCall:
		s.Call = p.callStep(o, sc)
	case StepBranch:
		s.Branch = p.branchStep(o, sc)
	case StepParallel:
		s.Parallel = p.parallelStep(o, sc)
	case StepForeach:
		s.Foreach = p.foreachStep(o, sc)
	case StepLoop:
		s.Loop = p.loopStep(o, sc)
	case StepSleep:
		s.Sleep = p.sleepStep(o, sc)
	case StepWaitForEvent:
		s.WaitForEvent = p.waitForEventStep(o, sc)
	case StepWaitForInput:
		s.WaitForInput = p.waitForInputStep(o)
	case StepCallWorkflow:
		s.CallWorkflow = p.callWorkflowStep(o, sc)
	default:
		// Without a valid type the other fields cannot be judged.
		o.skip()
	}
	o.finish()
	return s
}

func (p *parser) callStep(o *object, sc scope) *CallStep {
	c := &CallStep{Request: p.request(o, sc)}
	c.CallbackTimeout = o.optDuration("callback_timeout", defaultCallbackTimeout)
	if n, path := o.get("concurrency"); n != nil {
		c.Concurrency = p.concurrency(n, path, sc)
	}
	if n, path := o.get("rate_limit"); n != nil {
		c.RateLimit = p.rateLimit(n, path, sc)
	}
	if n, path := o.get("compensate"); n != nil {
		if co := p.object(n, path); co != nil {
			r := p.request(co, sc)
			c.Compensate = &r
			co.finish()
		}
	}
	return c
}

// request parses the fields a call step shares with its compensation.
func (p *parser) request(o *object, sc scope) Request {
	r := Request{Method: "POST", Timeout: Duration(defaultCallTimeout), Retry: defaultRetry, cfg: p.cfg}
	r.Retry.MaxInterval = maxIntervalFor(r.Retry.InitialInterval)
	if n, path := o.require("url"); n != nil {
		if s, ok := p.str(n, path); ok {
			r.URL = s
			p.checkURL(s, path)
		}
	}
	if n, path := o.get("method"); n != nil {
		if m, ok := p.enum(n, path, "GET", "POST", "PUT", "PATCH", "DELETE"); ok {
			r.Method = m
		}
	}
	if n, path := o.get("headers"); n != nil {
		r.Headers = p.headers(n, path, sc)
	}
	if n, path := o.get("timeout"); n != nil {
		if d, ok := p.duration(n, path, false); ok {
			if d > Duration(maxCallTimeout) {
				p.ps.add(path, "must be at most %s", maxCallTimeout)
			}
			r.Timeout = d
		}
	}
	if n, path := o.get("retry"); n != nil {
		r.Retry = p.retry(n, path)
	}
	if n, path := o.get("input"); n != nil {
		r.Input = p.template(n, path, sc)
	}
	return r
}

func (p *parser) checkURL(s, path string) {
	if strings.Contains(s, "${") {
		p.ps.add(path, "must be a literal URL; expressions are not supported here")
		return
	}
	u, err := url.Parse(s)
	if err != nil {
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err // without the URL, which the path already points at
		}
		p.ps.add(path, "must be an absolute http or https URL: %v", err)
		return
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		p.ps.add(path, "must be an absolute http or https URL")
	case u.Hostname() == "":
		p.ps.add(path, "must have a host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		p.ps.add(path, "must not have a fragment (#…)")
	}
}

func (p *parser) headers(n *node, path string, sc scope) map[string]Text {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	o.skip()
	out := make(map[string]Text, len(n.members))
	seen := make(map[string]string, len(n.members))
	for _, m := range n.members {
		hpath := pointer(path, m.key)
		lower := strings.ToLower(m.key)
		switch {
		case !validHeaderName(m.key):
			p.ps.add(hpath, "%s is not a valid header name", quote(m.key))
		case reservedHeaders[lower] || strings.HasPrefix(lower, "webhook-"):
			p.ps.add(hpath, "header %s is set by the engine and cannot be overridden", quote(m.key))
		case seen[lower] != "":
			p.ps.add(hpath, "duplicate header %s (header names are case-insensitive); first given as %s", quote(m.key), quote(seen[lower]))
		default:
			seen[lower] = m.key
		}
		if t, ok := p.text(m.val, hpath, sc); ok {
			out[m.key] = t
		}
	}
	return out
}

// text parses a header value: a literal, or an expression yielding a string.
func (p *parser) text(n *node, path string, sc scope) (Text, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return Text{}, false
	}
	if code, ok := matchExpr(s); ok {
		return Text{Expr: p.expr(code, s, path, stringType, sc)}, true
	}
	lit, ok := unescape(s)
	if !ok {
		p.ps.add(path, "%s", wholeStringRule)
		return Text{}, false
	}
	if !validHeaderValue(lit) {
		p.ps.add(path, "must not contain control characters")
	}
	return Text{Literal: lit}, true
}

const wholeStringRule = `an expression must be the whole string: "${ expr }" (write "$${" for a literal "${")`

func (p *parser) retry(n *node, path string) RetryPolicy {
	r := defaultRetry
	o := p.object(n, path)
	if o == nil {
		return r
	}
	if n, path := o.get("max_attempts"); n != nil {
		if v, ok := p.integer(n, path, 1, 1000); ok {
			r.MaxAttempts = int(v)
		}
	}
	if n, path := o.get("initial_interval"); n != nil {
		if d, ok := p.duration(n, path, false); ok {
			r.InitialInterval = d
		}
	}
	if n, path := o.get("backoff_coefficient"); n != nil {
		if f, ok := p.number(n, path); ok {
			if f < 1 {
				p.ps.add(path, "must be at least 1")
			}
			r.BackoffCoefficient = f
		}
	}
	r.MaxInterval = maxIntervalFor(r.InitialInterval)
	if n, mpath := o.get("max_interval"); n != nil {
		if d, ok := p.duration(n, mpath, false); ok {
			if d < r.InitialInterval {
				p.ps.add(mpath, "must not be less than initial_interval (%s)", r.InitialInterval)
			}
			r.MaxInterval = d
		}
	}
	if n, spath := o.get("non_retryable_statuses"); n != nil {
		if elems, ok := p.array(n, spath); ok {
			seen := make(map[int64]bool, len(elems))
			for i, e := range elems {
				epath := pointerAt(spath, i)
				v, ok := p.integer(e, epath, 400, 599)
				if !ok {
					continue
				}
				if seen[v] {
					p.ps.add(epath, "duplicate status %d", v)
					continue
				}
				seen[v] = true
				r.NonRetryableStatuses = append(r.NonRetryableStatuses, int(v))
			}
		}
	}
	o.finish()
	return r
}

// maxIntervalFor returns the default maximum interval, 100 × initial,
// saturating instead of overflowing for absurd initial intervals.
func maxIntervalFor(initial Duration) Duration {
	if initial > math.MaxInt64/100 {
		return math.MaxInt64
	}
	return initial * 100
}

func (p *parser) branchStep(o *object, sc scope) *BranchStep {
	b := &BranchStep{cfg: p.cfg}
	if n, path := o.get("on"); n != nil {
		b.On = p.exprField(n, path, anyType, sc)
	}
	hasOn := o.has("on")
	if n, path := o.require("cases"); n != nil {
		elems, ok := p.array(n, path)
		if ok && len(elems) == 0 {
			p.ps.add(path, "must contain at least one case")
		}
		for i, e := range elems {
			if c := p.branchCase(e, pointerAt(path, i), hasOn, sc); c != nil {
				b.Cases = append(b.Cases, c)
			}
		}
	}
	if n, path := o.get("default"); n != nil {
		b.Default = p.steps(n, path, sc)
	}
	return b
}

func (p *parser) branchCase(n *node, path string, hasOn bool, sc scope) *BranchCase {
	o := p.object(n, path)
	if o == nil {
		return nil
	}
	c := &BranchCase{}
	vn, vpath := o.get("value")
	in, ipath := o.get("if")
	switch {
	case vn != nil && in != nil:
		p.ps.add(path, `a case must have exactly one of "value" or "if", not both`)
	case vn == nil && in == nil:
		p.ps.add(path, `a case must have "value" or "if"`)
	case vn != nil && !hasOn:
		p.ps.add(vpath, `a case with "value" requires the branch step to have "on"`)
	}
	if vn != nil {
		c.Value = vn.literal()
	}
	if in != nil {
		c.If = p.exprField(in, ipath, boolType, sc)
	}
	if sn, spath := o.require("steps"); sn != nil {
		c.Steps = p.steps(sn, spath, sc)
	}
	o.finish()
	return c
}

func (p *parser) parallelStep(o *object, sc scope) *ParallelStep {
	ps := &ParallelStep{Merge: MergeObject, OnError: ErrorFailFast}
	if n, path := o.require("branches"); n != nil {
		elems, ok := p.array(n, path)
		if ok && len(elems) == 0 {
			p.ps.add(path, "must contain at least one branch")
		}
		names := make(map[string]string, len(elems))
		for i, e := range elems {
			bpath := pointerAt(path, i)
			bo := p.object(e, bpath)
			if bo == nil {
				continue
			}
			b := &ParallelBranch{}
			if nn, npath := bo.require("name"); nn != nil {
				if name, ok := p.str(nn, npath); ok {
					b.Name = name
					if !identPattern.MatchString(name) {
						p.ps.add(npath, "%s", identRule)
					}
					if first, dup := names[name]; dup {
						p.ps.add(npath, "duplicate branch name %s, first used by the branch at %s", quote(name), first)
					} else {
						names[name] = bpath
					}
				}
			}
			if sn, spath := bo.require("steps"); sn != nil {
				b.Steps = p.steps(sn, spath, sc)
			}
			bo.finish()
			ps.Branches = append(ps.Branches, b)
		}
	}
	if n, path := o.get("merge"); n != nil {
		if m, ok := p.enum(n, path, string(MergeObject), string(MergeDeepMerge)); ok {
			ps.Merge = Merge(m)
		}
	}
	if n, path := o.get("on_error"); n != nil {
		if m, ok := p.enum(n, path, string(ErrorFailFast), string(ErrorCompleteAll)); ok {
			ps.OnError = ErrorPolicy(m)
		}
	}
	return ps
}

func (p *parser) foreachStep(o *object, sc scope) *ForeachStep {
	f := &ForeachStep{Mode: ForeachSequential, OnError: ErrorFailFast}
	if n, path := o.require("items"); n != nil {
		f.Items = p.exprField(n, path, listType, sc)
	}
	if n, path := o.require("steps"); n != nil {
		f.Steps = p.steps(n, path, sc.inForeach())
	}
	if n, path := o.get("mode"); n != nil {
		if m, ok := p.enum(n, path, string(ForeachSequential), string(ForeachConcurrent)); ok {
			f.Mode = ForeachMode(m)
		}
	}
	f.Concurrency = 1
	if f.Mode == ForeachConcurrent {
		f.Concurrency = defaultConcurrency
	}
	if n, path := o.get("concurrency"); n != nil {
		if v, ok := p.integer(n, path, 1, maxConcurrency); ok {
			if f.Mode != ForeachConcurrent {
				p.ps.add(path, `only allowed when mode is "concurrent"`)
			}
			f.Concurrency = int(v)
		}
	}
	if n, path := o.get("collect_as"); n != nil {
		if s, ok := p.str(n, path); ok {
			if !identPattern.MatchString(s) {
				p.ps.add(path, "%s", identRule)
			}
			f.CollectAs = s
		}
	}
	if n, path := o.get("on_error"); n != nil {
		if m, ok := p.enum(n, path, string(ErrorFailFast), string(ErrorContinue), string(ErrorCollect)); ok {
			f.OnError = ErrorPolicy(m)
		}
	}
	return f
}

func (p *parser) loopStep(o *object, sc scope) *LoopStep {
	l := &LoopStep{}
	if n, path := o.require("while"); n != nil {
		l.While = p.exprField(n, path, boolType, sc.inLoop())
	}
	if n, path := o.require("max_iterations"); n != nil {
		if v, ok := p.integer(n, path, 1, maxLoopIterations); ok {
			l.MaxIterations = int(v)
		}
	}
	if n, path := o.require("steps"); n != nil {
		l.Steps = p.steps(n, path, sc.inLoop())
	}
	return l
}

func (p *parser) sleepStep(o *object, sc scope) *SleepStep {
	s := &SleepStep{}
	dn, dpath := o.get("duration")
	un, upath := o.get("until")
	switch {
	case dn != nil && un != nil:
		p.ps.add(o.path, `a sleep must have exactly one of "duration" or "until", not both`)
	case dn == nil && un == nil:
		p.ps.add(o.path, `a sleep must have "duration" or "until"`)
	}
	if dn != nil {
		s.Duration, _ = p.duration(dn, dpath, false)
	}
	if un != nil {
		if str, ok := p.str(un, upath); ok {
			if code, ok := matchExpr(str); ok {
				s.Until = p.expr(code, str, upath, timeType, sc)
			} else if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
				s.UntilTime = t.UTC()
			} else {
				p.ps.add(upath, `must be an expression "${ expr }" or an RFC 3339 timestamp such as "2026-01-02T15:04:05Z"`)
			}
		}
	}
	return s
}

func (p *parser) waitForEventStep(o *object, sc scope) *WaitForEventStep {
	w := &WaitForEventStep{OnTimeout: ActionFail}
	single := o.has("event") || o.has("key")
	forms := 0
	for _, present := range []bool{single, o.has("any"), o.has("all")} {
		if present {
			forms++
		}
	}
	switch {
	case forms == 0:
		p.ps.add(o.path, `a wait_for_event must have "event" and "key", "any" or "all"`)
	case forms > 1:
		p.ps.add(o.path, `a wait_for_event must have only one of "event" and "key", "any" or "all"`)
	}
	if single {
		w.Mode = EventOne
		w.Events = []EventMatch{p.eventMatch(o, sc)}
	}
	for _, mode := range []EventMode{EventAny, EventAll} {
		n, path := o.get(string(mode))
		if n == nil {
			continue
		}
		w.Mode = mode
		elems, ok := p.array(n, path)
		if ok && (len(elems) == 0 || len(elems) > maxEvents) {
			p.ps.add(path, "must contain 1 to %d events", maxEvents)
		}
		seen := map[string]bool{}
		for i, e := range elems {
			if eo := p.object(e, pointerAt(path, i)); eo != nil {
				m := p.eventMatch(eo, sc)
				if mode == EventAll && m.Event != "" && seen[m.Event] {
					// An all wait's output maps each payload by event name.
					p.ps.add(pointerAt(path, i)+"/event", "event %q is listed twice: the events of an all wait must have distinct names", m.Event)
				}
				seen[m.Event] = true
				w.Events = append(w.Events, m)
				eo.finish()
			}
		}
	}
	w.Timeout = o.optDuration("timeout", 0)
	w.OnTimeout = o.optAction("on_timeout")
	w.Lookback = Duration(defaultLookback)
	if n, path := o.get("lookback"); n != nil {
		if d, ok := p.duration(n, path, true); ok {
			if d > Duration(maxLookback) {
				p.ps.add(path, "must be at most %s", maxLookback)
			}
			w.Lookback = d
		}
	}
	return w
}

// eventMatch parses the "event" and "key" members of o.
func (p *parser) eventMatch(o *object, sc scope) EventMatch {
	var m EventMatch
	if n, path := o.require("event"); n != nil {
		if s, ok := p.str(n, path); ok {
			m.Event = s
			p.checkEventName(s, path)
		}
	}
	if n, path := o.require("key"); n != nil {
		m.Key = p.exprField(n, path, keyType, sc)
	}
	return m
}

func (p *parser) checkEventName(s, path string) {
	switch {
	case s == "":
		p.ps.add(path, "must not be empty")
	case utf8.RuneCountInString(s) > maxEventNameLen:
		p.ps.add(path, "must be at most %d characters", maxEventNameLen)
	case strings.ContainsFunc(s, unicode.IsControl):
		p.ps.add(path, "must not contain control characters")
	}
}

func (p *parser) waitForInputStep(o *object) *WaitForInputStep {
	w := &WaitForInputStep{OnTimeout: ActionFail, OnReject: ActionFail}
	if n, path := o.require("kind"); n != nil {
		if k, ok := p.enum(n, path, string(InputApproval), string(InputChoice), string(InputText), string(InputForm)); ok {
			w.Kind = InputKind(k)
		}
	}
	w.Prompt = o.optString("prompt")
	if w.Kind == "" {
		// Which of the fields below are allowed depends on the kind.
		o.skip()
		return w
	}
	if w.Kind == InputChoice {
		if n, path := o.require("options"); n != nil {
			w.Options = p.options(n, path)
		}
	} else {
		o.forbid("options", `only allowed when kind is "choice"`)
	}
	if w.Kind == InputForm {
		if n, path := o.require("schema"); n != nil && p.object(n, path) != nil {
			var problems []Problem
			w.schema, problems = compileSchema(n, path)
			for _, pr := range problems {
				p.ps.add(pr.Path, "%s", pr.Message)
			}
			w.Schema = n.appendCanonical(nil)
		}
	} else {
		o.forbid("schema", `only allowed when kind is "form"`)
	}
	w.Timeout = o.optDuration("timeout", 0)
	w.OnTimeout = o.optAction("on_timeout")
	if w.Kind == InputApproval {
		w.OnReject = o.optAction("on_reject")
	} else {
		o.forbid("on_reject", `only allowed when kind is "approval"`)
	}
	return w
}

// forbid records a problem if the member key is present.
func (o *object) forbid(key, rule string) {
	if n, path := o.get(key); n != nil {
		o.p.ps.add(path, "%s", rule)
	}
}

func (p *parser) options(n *node, path string) []string {
	elems, ok := p.array(n, path)
	if !ok {
		return nil
	}
	if len(elems) == 0 || len(elems) > maxOptions {
		p.ps.add(path, "must contain 1 to %d options", maxOptions)
	}
	out := make([]string, 0, len(elems))
	seen := make(map[string]bool, len(elems))
	for i, e := range elems {
		epath := pointerAt(path, i)
		s, ok := p.str(e, epath)
		switch {
		case !ok:
		case s == "":
			p.ps.add(epath, "must not be empty")
		case seen[s]:
			p.ps.add(epath, "duplicate option %s", quote(s))
		default:
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) callWorkflowStep(o *object, sc scope) *CallWorkflowStep {
	c := &CallWorkflowStep{Wait: true}
	if n, path := o.require("workflow"); n != nil {
		if s, ok := p.str(n, path); ok {
			if !workflowNamePattern.MatchString(s) {
				p.ps.add(path, "%s", workflowNameRule)
			}
			c.Workflow = s
		}
	}
	if n, path := o.get("version"); n != nil {
		if v, ok := p.integer(n, path, 1, math.MaxInt32); ok {
			c.Version = int(v)
		}
	}
	if n, path := o.get("input"); n != nil {
		c.Input = p.template(n, path, sc)
	}
	if n, path := o.get("wait"); n != nil {
		if b, ok := p.boolean(n, path); ok {
			c.Wait = b
		}
	}
	if n, path := o.get("timeout"); n != nil {
		if d, ok := p.duration(n, path, false); ok {
			if !c.Wait {
				p.ps.add(path, `only allowed when "wait" is true`)
			}
			c.Timeout = d
		}
	}
	return c
}

// template parses a mapping.
func (p *parser) template(n *node, path string, sc scope) *Template {
	return &Template{root: p.tmplNode(n, path, sc), cfg: p.cfg}
}

func (p *parser) tmplNode(n *node, path string, sc scope) *tmplNode {
	switch n.kind {
	case jsonString:
		if code, ok := matchExpr(n.text); ok {
			return &tmplNode{kind: tmplExpr, expr: p.expr(code, n.text, path, anyType, sc)}
		}
		s, ok := unescape(n.text)
		if !ok {
			p.ps.add(path, "%s", wholeStringRule)
		}
		return &tmplNode{kind: tmplLiteral, literal: s}
	case jsonObject:
		t := &tmplNode{kind: tmplObject}
		for _, m := range n.members {
			t.keys = append(t.keys, m.key)
			t.elems = append(t.elems, p.tmplNode(m.val, pointer(path, m.key), sc))
		}
		return t.collapse()
	case jsonArray:
		t := &tmplNode{kind: tmplArray}
		for i, e := range n.elems {
			t.elems = append(t.elems, p.tmplNode(e, pointerAt(path, i), sc))
		}
		return t.collapse()
	default:
		return &tmplNode{kind: tmplLiteral, literal: n.literal()}
	}
}

// collapse turns an object or array without expressions into one literal,
// so that rendering it is a copy rather than a walk.
func (t *tmplNode) collapse() *tmplNode {
	for _, e := range t.elems {
		if e.kind != tmplLiteral {
			return t
		}
	}
	if t.kind == tmplArray {
		v := make([]any, len(t.elems))
		for i, e := range t.elems {
			v[i] = e.literal
		}
		return &tmplNode{kind: tmplLiteral, literal: v}
	}
	v := make(map[string]any, len(t.elems))
	for i, e := range t.elems {
		v[t.keys[i]] = e.literal
	}
	return &tmplNode{kind: tmplLiteral, literal: v}
}

// exprField parses a field that must be an expression.
func (p *parser) exprField(n *node, path string, want exprType, sc scope) *Expr {
	s, ok := p.str(n, path)
	if !ok {
		return nil
	}
	code, ok := matchExpr(s)
	if !ok {
		p.ps.add(path, `must be an expression of the form "${ expr }"`)
		return nil
	}
	return p.expr(code, s, path, want, sc)
}

// expr registers an expression to be compiled once the whole definition has
// been read.
func (p *parser) expr(code, src, path string, want exprType, sc scope) *Expr {
	e := &Expr{src: src, path: path, cfg: p.cfg}
	p.exprCount++
	switch {
	case p.exprCount <= p.limits.MaxExpressions:
		p.exprs = append(p.exprs, pendingExpr{expr: e, code: code, want: want, scope: sc})
	case p.exprCount == p.limits.MaxExpressions+1:
		p.ps.add(path, "the definition has more than %d expressions", p.limits.MaxExpressions)
	}
	return e
}

func (p *parser) str(n *node, path string) (string, bool) {
	if n.kind != jsonString {
		p.ps.add(path, "must be a string, not %s", n.kind)
		return "", false
	}
	return n.text, true
}

func (p *parser) boolean(n *node, path string) (bool, bool) {
	if n.kind != jsonBool {
		p.ps.add(path, "must be a boolean, not %s", n.kind)
		return false, false
	}
	return n.boolean, true
}

func (p *parser) array(n *node, path string) ([]*node, bool) {
	if n.kind != jsonArray {
		p.ps.add(path, "must be an array, not %s", n.kind)
		return nil, false
	}
	return n.elems, true
}

func (p *parser) integer(n *node, path string, minimum, maximum int64) (int64, bool) {
	if n.kind != jsonNumber {
		p.ps.add(path, "must be an integer, not %s", n.kind)
		return 0, false
	}
	v, err := strconv.ParseInt(n.text, 10, 64)
	if err != nil || v < minimum || v > maximum {
		p.ps.add(path, "must be an integer from %d to %d", minimum, maximum)
		return 0, false
	}
	return v, true
}

func (p *parser) number(n *node, path string) (float64, bool) {
	if n.kind != jsonNumber {
		p.ps.add(path, "must be a number, not %s", n.kind)
		return 0, false
	}
	f, err := strconv.ParseFloat(n.text, 64)
	if err != nil {
		return 0, false // the decoder has reported the number as out of range
	}
	return f, true
}

func (p *parser) enum(n *node, path string, allowed ...string) (string, bool) {
	s, ok := p.str(n, path)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	p.ps.add(path, "%s is not one of %s", quote(s), quoteList(allowed))
	return "", false
}

// duration parses a Go duration string that must be positive, or with
// allowZero, not negative.
func (p *parser) duration(n *node, path string, allowZero bool) (Duration, bool) {
	if n.kind != jsonString {
		p.ps.add(path, `must be a duration string such as "30s", "5m" or "24h", not %s`, n.kind)
		return 0, false
	}
	d, err := time.ParseDuration(n.text)
	switch {
	case err != nil:
		p.ps.add(path, `%s is not a duration; write a Go duration such as "90s", "5m", "1h30m" or "72h" (units: ms, s, m, h)`, quote(n.text))
	case d < 0 || (d == 0 && !allowZero):
		if allowZero {
			p.ps.add(path, "must not be negative")
		} else {
			p.ps.add(path, "must be greater than zero")
		}
	default:
		return Duration(d), true
	}
	return 0, false
}

func (o *object) optString(key string) string {
	n, path := o.get(key)
	if n == nil {
		return ""
	}
	s, _ := o.p.str(n, path)
	return s
}

func (o *object) optDuration(key string, def time.Duration) Duration {
	n, path := o.get(key)
	if n == nil {
		return Duration(def)
	}
	d, ok := o.p.duration(n, path, false)
	if !ok {
		return Duration(def)
	}
	return d
}

func (o *object) optAction(key string) Action {
	n, path := o.get(key)
	if n == nil {
		return ActionFail
	}
	a, ok := o.p.enum(n, path, string(ActionFail), string(ActionContinue))
	if !ok {
		return ActionFail
	}
	return Action(a)
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s may be sent as a header value: no
// control characters but tab, so no header injection through CR or LF.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
