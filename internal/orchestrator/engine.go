package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// errLeaseLost ends a transition whose work item's lease is gone: the run
// was cancelled or timed out, a callback completed the step first, or the
// lease expired and another worker took the work over. The transition's
// changes are rolled back; its late result is ignored.
var errLeaseLost = errors.New("the work lease was lost; the result is ignored")

// errStale ends a transition that finds its attempt no longer in progress.
var errStale = errors.New("the attempt is no longer in progress; the result is ignored")

// runState is what a worker knows of a run while it advances it: enough to
// evaluate expressions and build step requests without reading the run
// again after each step.
type runState struct {
	run    workflow.Run
	def    *workflow.Definition
	input  any
	ctx    map[string]any
	ctxRaw json.RawMessage
	// ctxMembers holds the context's members as their JSON text, so that a
	// merge keeps every value exactly as it was written (a decoded number
	// might not survive encoding again).
	ctxMembers map[string]json.RawMessage
	steps      map[string]any // step name → {"output": …}
	outputs    map[string]json.RawMessage
	// scope is the foreach lane the worker is in ("ship[3]."; "" outside
	// any): the keys of the steps it starts are qualified by it, and its
	// item and index are what expressions see as item and index.
	scope string
	item  any
	index int64
}

// key is the key of the step named name in the state's scope.
func (st *runState) key(name string) string { return st.scope + name }

// parentKey is the key of the execution the step named name is nested in.
func (st *runState) parentKey(name string) string { return parentKeyOf(st.def, st.scope, name) }

// loadRunState reads what expressions of a run may refer to in scope: its
// input, context, the outputs of its steps that succeeded (in scope and the
// scopes around it; inside a foreach item, the item's own steps), and the
// item and index of the foreach item that scope is.
func (s *Service) loadRunState(ctx context.Context, q runReader, run workflow.Run, scope string) (*runState, error) {
	def, err := s.definitionOf(ctx, q, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	st := &runState{run: run, def: def}
	if st.input, err = workflow.DecodeJSON(run.Input); err != nil {
		return nil, fmt.Errorf("decode run input: %w", err)
	}
	if err := st.setContext(run.Context); err != nil {
		return nil, err
	}
	return st, st.enter(ctx, q, scope)
}

// inScope returns a copy of st for scope, sharing its decoded input and
// context: a worker going on with another lane of the run does not decode
// them again.
func (st *runState) inScope(ctx context.Context, q runReader, scope string) (*runState, error) {
	moved := *st
	return &moved, moved.enter(ctx, q, scope)
}

// enter reads the step outputs and the item that scope sees.
func (st *runState) enter(ctx context.Context, q runReader, scope string) error {
	st.scope, st.steps, st.outputs, st.item, st.index = scope, map[string]any{}, map[string]json.RawMessage{}, nil, 0
	if st.run.Status != workflow.RunPending {
		chain := scopeChain(scope)
		var names, keys []string
		st.def.Walk(func(_ string, step *workflow.Step) bool {
			names = append(names, step.Name)
			for _, sc := range chain {
				keys = append(keys, sc+step.Name)
			}
			return true
		})
		outputs, err := q.StepOutputs(ctx, st.run.ID, keys)
		if err != nil {
			return err
		}
		// The innermost scope's execution of a step is the one it sees.
		for _, sc := range chain {
			for _, name := range names {
				if out, ok := outputs[sc+name]; ok {
					if err := st.setOutput(name, out); err != nil {
						return err
					}
				}
			}
		}
	}
	if scope == "" {
		return nil
	}
	lane, err := q.GetStepExecutionByKey(ctx, st.run.ID, strings.TrimSuffix(scope, "."))
	if err != nil {
		return err
	}
	var in itemOf
	if err := json.Unmarshal(lane.Input, &in); err != nil {
		return fmt.Errorf("decode item of lane %s: %w", lane.Key, err)
	}
	if st.item, err = workflow.DecodeJSON(payloadOrNull(in.Item)); err != nil {
		return fmt.Errorf("decode item of lane %s: %w", lane.Key, err)
	}
	st.index = in.Index
	return nil
}

type runReader interface {
	versionReader
	StepOutputs(ctx context.Context, runID uuid.UUID, keys []string) (map[string]json.RawMessage, error)
	GetStepExecutionByKey(ctx context.Context, runID uuid.UUID, key string) (workflow.StepExecution, error)
}

func (st *runState) setContext(raw json.RawMessage) error {
	v, err := workflow.DecodeJSON(raw)
	if err != nil {
		return fmt.Errorf("decode run context: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	members := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &members); err != nil {
		members = map[string]json.RawMessage{}
	}
	st.ctx, st.ctxRaw, st.ctxMembers = m, raw, members
	return nil
}

// mergeContext merges a step's context answer (a JSON object) into the
// run's context as PostgreSQL's jsonb || does: top-level members replaced.
func (st *runState) mergeContext(patch json.RawMessage) error {
	v, err := workflow.DecodeJSON(patch)
	if err != nil {
		return fmt.Errorf("decode context answer: %w", err)
	}
	decoded, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("the context answer is not an object")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(patch, &members); err != nil {
		return fmt.Errorf("decode context answer: %w", err)
	}
	ctx := make(map[string]any, len(st.ctx)+len(decoded))
	for k, v := range st.ctx {
		ctx[k] = v
	}
	all := make(map[string]json.RawMessage, len(st.ctxMembers)+len(members))
	for k, v := range st.ctxMembers {
		all[k] = v
	}
	for k, v := range decoded {
		ctx[k] = v
		all[k] = members[k]
	}
	raw, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("encode run context: %w", err)
	}
	st.ctx, st.ctxMembers, st.ctxRaw = ctx, all, raw
	return nil
}

func (st *runState) setOutput(name string, raw json.RawMessage) error {
	var v any
	if len(raw) > 0 {
		var err error
		if v, err = workflow.DecodeJSON(raw); err != nil {
			return fmt.Errorf("decode output of step %s: %w", name, err)
		}
	}
	st.steps[name] = map[string]any{"output": v}
	st.outputs[name] = raw
	return nil
}

func (st *runState) activation() workflow.Activation {
	return workflow.Activation{
		Input: st.input,
		Ctx:   st.ctx,
		Steps: st.steps,
		Run: map[string]any{
			"id": st.run.ID.String(), "workflow": st.run.Workflow,
			"version": int64(st.run.Version), "attempt": int64(st.run.Attempt),
		},
		Item:    st.item,
		Index:   st.index,
		Decoded: true,
	}
}

// attempt is one attempt at a call step, ready to be made: the worker
// holds the lease of item while it makes it.
type attempt struct {
	item      postgres.WorkItem
	state     *runState
	step      *workflow.Step
	key       string // the step execution's key
	execID    uuid.UUID
	webhook   string
	number    int
	abandoned int // earlier attempts the engine cut short
	input     json.RawMessage
	token     string
	deadline  time.Time
	// successor is the next step's first attempt, once the hot path has
	// prepared it for this attempt's result (see [Service.succeedAndContinue]).
	successor     *attempt
	successorHash []byte
}

// maxAbandoned bounds the attempts of one step execution that the engine
// may cut short (lost or stopped workers) before the step fails: they do not
// count against the retry policy, but a step that keeps killing its workers
// must not loop for ever.
const maxAbandoned = 10

// retriesLeft reports whether the retry policy allows another attempt after
// this one. Attempts the engine abandoned do not count.
func (a *attempt) retriesLeft() bool {
	return a.number-a.abandoned < a.step.Call.Retry.MaxAttempts
}

// leaseFor is how long a worker may hold a step's work: the attempt's
// timeout plus a margin for recording the result. A worker that dies loses
// its lease after that long.
func (s *Service) leaseFor(step *workflow.Step) time.Duration {
	return time.Duration(step.Call.Timeout) + s.leaseMargin
}

// renderInput evaluates a step's input mapping.
func renderInput(ctx context.Context, st *runState, step *workflow.Step) (json.RawMessage, error) {
	if step.Call.Input == nil {
		return json.RawMessage(`{}`), nil
	}
	return step.Call.Input.RenderJSON(ctx, st.activation())
}

// newAttemptRecord prepares attempt number n of a step execution: its
// callback token (of which only the hash is stored) and deadline.
func (s *Service) newAttemptRecord(a *attempt) ([]byte, error) {
	token, hash, err := s.secrets.NewCallbackToken(signing.CallbackRef{StepExecutionID: a.execID, Attempt: a.number})
	if err != nil {
		return nil, fmt.Errorf("new callback token: %w", err)
	}
	a.token = token
	a.deadline = time.Now().Add(time.Duration(a.step.Call.Timeout))
	return hash, nil
}

// newExecution describes the first attempt of a step execution not
// created yet: its id, key and webhook-id.
func newExecution(item postgres.WorkItem, st *runState, step *workflow.Step) *attempt {
	a := &attempt{item: item, state: st, step: step, key: st.key(step.Name), execID: uuid.Must(uuid.NewV7()), number: 1}
	a.webhook = "msg_" + a.execID.String()
	return a
}

// execution is what the database needs to create a's step execution, with
// input.
func (s *Service) execution(a *attempt, input json.RawMessage) postgres.NewStepExecution {
	return postgres.NewStepExecution{
		ID: a.execID, Key: a.key, ParentKey: a.state.parentKey(a.step.Name), Name: a.step.Name, Type: string(a.step.Type),
		WebhookID: a.webhook, Input: input, WorkerID: s.workerID,
	}
}

// beginExecution creates a step execution that the engine runs itself (a
// branch, a block) or that fails before it could begin, under the work
// item's lease, and marks the run running.
func (s *Service) beginExecution(ctx context.Context, tx *postgres.Tx, st *runState, item postgres.WorkItem, exec postgres.NewStepExecution) error {
	started, err := tx.StartSteps(ctx, []postgres.StepStart{{
		Work: item, Lease: s.leaseMargin, Exec: exec,
		MarkRunning: st.run.Status != workflow.RunRunning, RunStarted: st.run.Status == workflow.RunPending,
	}})
	if err != nil || !started[0] {
		return orLeaseLost(err, err == nil && started[0])
	}
	st.run.Status = workflow.RunRunning
	return nil
}

// newAttempt prepares the first attempt of a step execution not created
// yet: its ids, callback token (of which only hash is stored) and deadline.
func (s *Service) newAttempt(item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, []byte, error) {
	a := newExecution(item, st, step)
	hash, err := s.newAttemptRecord(a)
	return a, hash, err
}

// startStep starts the first attempt of step in tx, pointing the work item
// at it under the caller's lease, with its input rendered from what the run
// knows now. When the input cannot be built, the step and the run fail
// instead, and startStep returns nil.
func (s *Service) startStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	if isWait(step.Type) {
		return nil, s.startWait(ctx, tx, item, st, step)
	}
	if step.Branch != nil {
		return s.startBranch(ctx, tx, item, st, step)
	}
	if step.CallWorkflow != nil {
		return nil, s.startChild(ctx, tx, item, st, step)
	}
	if step.OpensLanes() {
		return s.startBlock(ctx, tx, item, st, step)
	}
	a, start, renderErr, err := s.prepareStart(ctx, item, st, step)
	if err != nil {
		return nil, err
	}
	return s.startPrepared(ctx, tx, a, start, renderErr)
}

// startPrepared starts an attempt [Service.prepareStart] prepared; when its
// input could not be built, the step and the run fail instead, and it
// returns nil.
func (s *Service) startPrepared(ctx context.Context, tx *postgres.Tx, a *attempt, start postgres.StepStart, renderErr error) (*attempt, error) {
	started, err := tx.StartSteps(ctx, []postgres.StepStart{start})
	if err != nil || !started[0] {
		return nil, orLeaseLost(err, err == nil && started[0])
	}
	a.state.run.Status = workflow.RunRunning
	if renderErr != nil {
		stepErr := errorJSON(fmt.Sprintf("the step's input could not be built: %v", renderErr), 0)
		return nil, s.failStep(ctx, tx, a, stepErr, 0, "failed")
	}
	return a, nil
}

// prepareStart prepares the first attempt of step without touching the
// database: its ids and callback token, its input rendered from what the
// run knows now (renderErr when that fails; the input is then null), and
// what [postgres.Tx.StartSteps] needs to start it.
func (s *Service) prepareStart(ctx context.Context, item postgres.WorkItem, st *runState, step *workflow.Step) (a *attempt, start postgres.StepStart, renderErr error, err error) {
	a, hash, err := s.newAttempt(item, st, step)
	if err != nil {
		return nil, start, nil, err
	}
	input, renderErr := renderInput(ctx, st, step)
	if renderErr == nil && len(input) > s.limits.MaxOutputBytes {
		renderErr = fmt.Errorf("the rendered input is %d bytes; the limit is %d", len(input), s.limits.MaxOutputBytes)
	}
	if renderErr == nil {
		a.input = input
	}
	exec := s.execution(a, a.input)
	exec.Timeout, exec.CallbackHash = time.Duration(step.Call.Timeout), hash
	start = postgres.StepStart{
		Work: item, Lease: s.leaseFor(step), Exec: exec,
		MarkRunning: st.run.Status != workflow.RunRunning, RunStarted: st.run.Status == workflow.RunPending,
	}
	return a, start, renderErr, nil
}

// restartStep starts the next attempt of a step execution that failed
// retryably, or whose worker was lost.
func (s *Service) restartStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, exec workflow.StepExecution) (*attempt, error) {
	step := st.def.Step(exec.Name)
	if step == nil || step.Call == nil {
		return nil, fmt.Errorf("step %q of run %s is not a call step of %s v%d", exec.Name, st.run.ID, st.run.Workflow, st.run.Version)
	}
	a := &attempt{item: item, state: st, step: step, key: exec.Key, execID: exec.ID, webhook: exec.WebhookID, number: item.Attempt, abandoned: exec.Abandoned, input: exec.Input}
	switch exec.Status {
	case "succeeded":
		// Recorded already; only the move to the next step was lost.
		ok, err := tx.RescheduleWork(ctx, item, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: exec.Key}, 0)
		return nil, orLeaseLost(err, ok)
	case "failed", "cancelled", "timed_out":
		_, err := tx.CompleteWork(ctx, item)
		return nil, err
	}
	if exec.Attempt == item.Attempt && exec.Status == "running" {
		// The worker making this attempt stopped answering and its lease
		// expired: the attempt is abandoned, and the next one starts.
		lost := errorJSON("the worker making this attempt stopped answering; its lease expired", 0)
		n, ok, err := tx.AbandonStepAttempt(ctx, exec.ID, exec.Attempt, lost)
		if err != nil || !ok {
			return nil, orStale(err, ok)
		}
		appendHistory(tx, st.run.ID, workflow.EventStepAbandoned, exec.Key, &exec.Attempt, map[string]any{"error": lost})
		a.number, a.abandoned = exec.Attempt+1, n
	}
	var exhausted string
	switch max := step.Call.Retry.MaxAttempts; {
	case a.abandoned > maxAbandoned:
		exhausted = fmt.Sprintf("the step's workers were lost or stopped during %d of its attempts", a.abandoned)
	case a.number-a.abandoned > max:
		exhausted = fmt.Sprintf("all %d attempts were made", max)
	}
	if exhausted != "" {
		a.number--
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
		return nil, s.failStepExecution(ctx, tx, a, errorJSON(exhausted, 0))
	}
	hash, err := s.newAttemptRecord(a)
	if err != nil {
		return nil, err
	}
	if ok, err := tx.ContinueWork(ctx, item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number}, s.leaseFor(step)); err != nil || !ok {
		return nil, orLeaseLost(err, ok)
	}
	if ok, err := tx.StartStepAttempt(ctx, exec.ID, a.number, time.Duration(step.Call.Timeout)); err != nil || !ok {
		return nil, orStale(err, ok)
	}
	if st.run.Status != workflow.RunRunning {
		if _, err := tx.MarkRunRunning(ctx, st.run.ID); err != nil {
			return nil, err
		}
		st.run.Status = workflow.RunRunning
	}
	if err := tx.InsertStepAttempt(ctx, exec.ID, a.number, st.run.ID, s.workerID, hash); err != nil {
		return nil, err
	}
	appendHistory(tx, st.run.ID, workflow.EventStepStarted, exec.Key, &a.number, nil)
	return a, nil
}

func orLeaseLost(err error, ok bool) error {
	if err != nil {
		return err
	}
	if !ok {
		return errLeaseLost
	}
	return nil
}

func orStale(err error, ok bool) error {
	if err != nil {
		return err
	}
	if !ok {
		return errStale
	}
	return nil
}

// currentAttempt describes the attempt a step execution is at, for the
// transitions that act on it without a worker's state: callbacks and
// timeouts.
func (s *Service) currentAttempt(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, run workflow.Run, exec workflow.StepExecution) (*attempt, error) {
	def, err := s.definitionOf(ctx, tx, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	step := def.Step(exec.Name)
	if step == nil {
		return nil, fmt.Errorf("run %s has no step %q in %s v%d", run.ID, exec.Name, run.Workflow, run.Version)
	}
	scope, _ := splitKey(exec.Key)
	return &attempt{
		item: item, state: &runState{run: run, def: def, scope: scope}, step: step, key: exec.Key, execID: exec.ID,
		webhook: exec.WebhookID, number: exec.Attempt, abandoned: exec.Abandoned,
	}, nil
}

// stepRequestBody is what a call step's endpoint receives.
type stepRequestBody struct {
	RunID    uuid.UUID   `json:"run_id"`
	Workflow workflowRef `json:"workflow"`
	Step     string      `json:"step"`
	Attempt  int         `json:"attempt"`
	// Compensation and Output are set for a compensation request only: it
	// carries the original step's output.
	Compensation bool            `json:"compensation,omitempty"`
	Input        json.RawMessage `json:"input"`
	Output       json.RawMessage `json:"output,omitempty"`
	Context      json.RawMessage `json:"context"`
	// CallbackURL is absent from a compensation request: a compensation
	// finishes with its answer.
	CallbackURL string    `json:"callback_url,omitempty"`
	Deadline    time.Time `json:"deadline"`
	// CallbackDeadline is, for a step that may answer 202, the earliest its
	// callback deadline can be: callback_timeout from this request. The real
	// one is callback_timeout from when the 202 is recorded, a little later.
	CallbackDeadline *time.Time `json:"callback_deadline,omitempty"`
}

type workflowRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// request builds the HTTP request of an attempt.
func (s *Service) request(ctx context.Context, a *attempt) (httpstep.Request, error) {
	callbackDeadline := time.Now().Add(time.Duration(a.step.Call.CallbackTimeout)).UTC().Truncate(time.Second)
	body, err := json.Marshal(stepRequestBody{
		RunID: a.state.run.ID, Workflow: workflowRef{a.state.run.Workflow, a.state.run.Version},
		Step: a.step.Name, Attempt: a.number, Input: a.input, Context: a.state.ctxRaw,
		CallbackURL: s.publicURL + "/v1/callbacks/" + a.token, Deadline: a.deadline.UTC().Truncate(time.Second),
		CallbackDeadline: &callbackDeadline,
	})
	if err != nil {
		return httpstep.Request{}, fmt.Errorf("encode step request: %w", err)
	}
	headers, err := a.step.Call.RenderHeaders(ctx, a.state.activation())
	if err != nil {
		return httpstep.Request{}, err
	}
	return httpstep.Request{
		URL: a.step.Call.URL, Method: a.step.Call.Method, Headers: headers, Body: body,
		WebhookID: a.webhook, Timeout: time.Duration(a.step.Call.Timeout),
	}, nil
}

// recordResult records how an attempt ended, in one transaction, and —
// when the step succeeded, the run has a next step and the worker is not
// draining — starts the next step in the same transaction and returns it,
// so the worker goes straight on without queueing the run again.
func (s *Service) recordResult(ctx context.Context, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	res = storable(res)
	if next, ok, err := s.succeedAndContinue(ctx, a, res, draining); ok || err != nil {
		return next, err
	}
	var next *attempt
	if a.state.def.HasLanes() {
		defer s.turns.take(a.state.run.ID)()
	}
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if err := s.lockToRecord(ctx, tx, a); err != nil {
			return err
		}
		var err error
		next, err = s.recordResultTx(ctx, tx, a, res, draining)
		return err
	})
	if err != nil {
		return nil, err
	}
	return next, nil
}

// lockToRecord locks the work item of an attempt whose result is to be
// recorded. In a run with lanes it locks the run's row too, and brings the
// worker's view of the context up to date: other lanes may have merged
// into it since the worker read it, and the steps it starts next send it.
func (s *Service) lockToRecord(ctx context.Context, tx *postgres.Tx, a *attempt) error {
	if !a.state.def.HasLanes() {
		ok, err := tx.LockLeasedWork(ctx, a.item)
		return orLeaseLost(err, ok)
	}
	current, ok, err := tx.LockLeasedWorkAndRun(ctx, a.item)
	if err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if bytes.Equal(current, a.state.ctxRaw) {
		return nil
	}
	return a.state.setContext(current)
}

func (s *Service) recordResultTx(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	policy := a.step.Call.Retry
	switch res.Outcome {
	case httpstep.Succeeded:
		if len(res.Output) > s.limits.MaxOutputBytes {
			return nil, s.failStep(ctx, tx, a, errorJSON(fmt.Sprintf("the step's output is %d bytes; the limit is %d", len(res.Output), s.limits.MaxOutputBytes), res.HTTPStatus), res.HTTPStatus, "failed")
		}
		return s.succeedStep(ctx, tx, a, res, draining)
	case httpstep.Accepted:
		return nil, s.parkStep(ctx, tx, a, res)
	case httpstep.Retryable:
		if a.retriesLeft() && !nonRetryable(policy, res.HTTPStatus) {
			return nil, s.retryStep(ctx, tx, a, res.Error, res.HTTPStatus, "failed", retryDelay(policy, a.number, res.RetryAfter))
		}
	}
	return nil, s.failStep(ctx, tx, a, res.Error, res.HTTPStatus, "failed")
}

// storable makes a step's answer fit for storing: an answer whose output,
// context or logs hold text PostgreSQL cannot store faithfully (\u0000,
// unpaired surrogates) fails the step for good, since it would fail the same
// way again; an error holding such text is replaced by a description.
func storable(res httpstep.Result) httpstep.Result {
	for name, part := range map[string]json.RawMessage{"output": res.Output, "context": res.Context, "logs": res.Logs} {
		if err := workflow.CheckStorable(part); err != nil {
			return httpstep.Result{
				Outcome: httpstep.Permanent, HTTPStatus: res.HTTPStatus, Duration: res.Duration,
				Error: errorJSON(fmt.Sprintf("the step's %s cannot be stored: %v", name, err), res.HTTPStatus),
			}
		}
	}
	if err := workflow.CheckStorable(res.Error); err != nil {
		res.Error = errorJSON(fmt.Sprintf("the step's error cannot be stored: %v", err), res.HTTPStatus)
	}
	return res
}

func nonRetryable(p workflow.RetryPolicy, status int) bool {
	for _, s := range p.NonRetryableStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// retryDelay is the wait before the retry after attempt n: the policy's
// backoff with full jitter, or the endpoint's Retry-After when longer,
// never more than the policy's maximum interval.
func retryDelay(p workflow.RetryPolicy, n int, retryAfter time.Duration) time.Duration {
	d := time.Duration(rand.Int64N(int64(p.Backoff(n)) + 1))
	if retryAfter > d {
		d = min(retryAfter, time.Duration(p.MaxInterval))
	}
	return d
}

// succeedAndContinue is the hot path of [Service.recordResult]: a step
// succeeded and the run goes on to its next step, recorded in one statement
// (see [postgres.DB.SucceedAndContinue]). It returns false, having done
// nothing, when the case is not that simple — the run ends, the worker is
// draining, a limit is exceeded or the next step's input cannot be built —
// and the general path must record the result.
func (s *Service) succeedAndContinue(ctx context.Context, a *attempt, res httpstep.Result, draining bool) (*attempt, bool, error) {
	st := a.state
	step, ended := st.def.Successor(a.step.Name)
	// A step in a lane takes the general path, which locks the run's row:
	// the lanes of a run take turns.
	if res.Outcome != httpstep.Succeeded || step == nil || step.Call == nil || len(ended) > 0 || draining ||
		st.run.Status != workflow.RunRunning || len(res.Output) > s.limits.MaxOutputBytes || (st.def.HasLanes() && laneOf(st.def, st.scope, a.step.Name) != "") {
		return nil, false, nil
	}
	patch := res.Context
	if len(patch) == 0 || string(patch) == "{}" {
		patch = nil
	}
	// A failed merge or render below leaves st changed; the general path
	// that then runs sets the context and the output again.
	if patch != nil {
		if err := st.mergeContext(patch); err != nil || len(st.ctxRaw) > s.limits.MaxContextBytes {
			return nil, false, nil
		}
	}
	output := res.Output
	if output == nil {
		output = json.RawMessage("null")
	}
	if err := st.setOutput(a.step.Name, output); err != nil {
		return nil, false, nil
	}
	// The next attempt is made once per result: when a try is sent again
	// because its commit went unheard, the statement recognises its own
	// next execution, and the attempt carries the callback token whose hash
	// was stored.
	if a.successor == nil {
		next, hash, err := s.newAttempt(a.item, st, step)
		if err != nil {
			return nil, false, err
		}
		a.successor, a.successorHash = next, hash
	}
	next, hash := a.successor, a.successorHash
	input, err := renderInput(ctx, st, step)
	if err != nil || len(input) > s.limits.MaxOutputBytes {
		return nil, false, nil
	}
	next.input = input
	succeeded, _ := json.Marshal(map[string]any{"http_status": res.HTTPStatus, "duration_ms": res.Duration.Milliseconds()})
	ok, err := s.db.SucceedAndContinue(ctx, postgres.SucceedAndContinue{
		Work: a.item, Lease: s.leaseFor(step),
		Result: postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, HTTPStatus: res.HTTPStatus, Logs: res.Logs},
		Output: output, ContextPatch: patch, StepKey: a.key, Succeeded: succeeded,
		Next: postgres.NewStepExecution{
			ID: next.execID, Key: next.key, ParentKey: st.parentKey(step.Name), Name: step.Name, Type: string(step.Type), WebhookID: next.webhook,
			Input: input, Timeout: time.Duration(step.Call.Timeout), WorkerID: s.workerID, CallbackHash: hash,
		},
	})
	if err != nil {
		return nil, true, err
	}
	if !ok {
		return nil, true, errLeaseLost
	}
	return next, true, nil
}

// succeedStep records a step's success, merges its context answer, and
// starts the next step or finishes the run.
func (s *Service) succeedStep(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	st := a.state
	patch := res.Context
	if len(patch) == 0 || string(patch) == "{}" {
		patch = nil
	}
	if patch != nil && len(st.ctxRaw)+len(patch) > s.limits.MaxContextBytes {
		if merged, err := mergedSize(st.ctx, patch); err != nil || merged > s.limits.MaxContextBytes {
			return nil, s.failStep(ctx, tx, a, errorJSON(fmt.Sprintf("merging the step's context answer would make the run's context larger than %d bytes", s.limits.MaxContextBytes), res.HTTPStatus), res.HTTPStatus, "failed")
		}
	}
	// The work item goes first: it fences the transition to this worker's
	// lease and takes the locks in the order every transition takes them.
	// The caller locked the work item; startStep moves it on when the run
	// goes on.
	step, ended, laneEnds := after(st.def, a.step.Name)
	switch {
	case draining:
		if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: a.key}, 0); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
	case laneEnds:
		// The lane's end deals with the item: the locks of the
		// transaction fenced it already.
	case step == nil:
		if ok, err := tx.CompleteWork(ctx, a.item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
	}
	if patch != nil {
		merged, err := tx.MergeRunContext(ctx, st.run.ID, patch)
		if err != nil {
			return nil, err
		}
		if err := st.setContext(merged); err != nil {
			return nil, err
		}
	}
	output := res.Output
	if output == nil {
		output = json.RawMessage("null")
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{
		StepExecutionID: a.execID, Attempt: a.number, Status: "succeeded", HTTPStatus: res.HTTPStatus, Logs: res.Logs,
	}, "succeeded", output); err != nil || !ok {
		return nil, orStale(err, ok)
	}
	if err := st.setOutput(a.step.Name, output); err != nil {
		return nil, err
	}
	appendHistory(tx, st.run.ID, workflow.EventStepSucceeded, a.key, &a.number, map[string]any{"http_status": res.HTTPStatus, "duration_ms": res.Duration.Milliseconds()})
	if draining {
		// The advance item the worker leaves behind ends the enclosing
		// steps and starts the next one.
		return nil, nil
	}
	if err := s.endEnclosing(ctx, tx, st, ended, output); err != nil {
		return nil, err
	}
	switch {
	case laneEnds:
		return s.endLane(ctx, tx, a.item, st, laneOf(st.def, st.scope, a.step.Name), output)
	case step == nil:
		return nil, s.finishRun(ctx, tx, st, output)
	}
	return s.startStep(ctx, tx, a.item, st, step)
}

// advance starts what follows the position key names — after a step, or a
// lane's first step — for a work item that a worker claimed: the next step,
// or the end of the enclosing branches, lane or run. Nothing starts in a
// lane that a failing sibling cancelled meanwhile.
func (s *Service) advance(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, key string) (*attempt, error) {
	if isLaneKey(key) {
		return s.startLane(ctx, tx, item, st, key)
	}
	_, name := splitKey(key)
	lane := laneOf(st.def, st.scope, name)
	if lane != "" {
		if gone, err := s.laneGone(ctx, tx, item, st, lane); err != nil || gone {
			return nil, err
		}
	}
	next, ended, laneEnds := after(st.def, name)
	output := st.outputs[name]
	if err := s.endEnclosing(ctx, tx, st, ended, output); err != nil {
		return nil, err
	}
	switch {
	case next != nil:
		return s.startStep(ctx, tx, item, st, next)
	case laneEnds:
		return s.endLane(ctx, tx, item, st, lane, output)
	}
	if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
		return nil, orLeaseLost(err, ok)
	}
	return nil, s.finishRun(ctx, tx, st, output)
}

// endEnclosing finishes the steps whose nested steps just ended (a branch
// whose case ran its last step), innermost first: each succeeds with the
// output of its last nested step.
func (s *Service) endEnclosing(ctx context.Context, tx *postgres.Tx, st *runState, ended []*workflow.Step, output json.RawMessage) error {
	for _, e := range ended {
		exec, err := tx.GetStepExecutionByKey(ctx, st.run.ID, st.key(e.Name))
		if err != nil {
			return err
		}
		if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: exec.ID, Attempt: exec.Attempt, Status: "succeeded"}, "succeeded", output); err != nil || !ok {
			return orStale(err, ok)
		}
		if err := st.setOutput(e.Name, output); err != nil {
			return err
		}
		appendHistory(tx, st.run.ID, workflow.EventStepSucceeded, exec.Key, &exec.Attempt, nil)
	}
	return nil
}

// startBranch starts a branch step: it records the branch's execution with
// the case it chose, and starts that case's first step. A branch whose
// selection fails, or where no case matches and there is no default, fails
// the step and the run.
func (s *Service) startBranch(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	index, steps, selErr := step.Branch.Select(ctx, st.activation())
	chosen := any(index)
	switch {
	case selErr != nil || len(steps) == 0:
		chosen = nil // no case chose
	case index < 0:
		chosen = "default"
	}
	input, _ := json.Marshal(map[string]any{"case": chosen}) // an int or a string always encodes
	a := newExecution(item, st, step)
	if err := s.beginExecution(ctx, tx, st, item, s.execution(a, input)); err != nil {
		return nil, err
	}
	switch {
	case selErr != nil:
		return nil, s.failStep(ctx, tx, a, errorJSON(fmt.Sprintf("the branch could not choose a case: %v", selErr), 0), 0, "failed")
	case len(steps) == 0:
		return nil, s.failStep(ctx, tx, a, errorJSON("no case of the branch matched, and it has no default", 0), 0, "failed")
	}
	return s.startStep(ctx, tx, item, st, steps[0])
}

// mergedSize is the size of ctx with patch merged in, as JSON.
func mergedSize(ctx map[string]any, patch json.RawMessage) (int, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil {
		return 0, err
	}
	merged := make(map[string]any, len(ctx)+len(p))
	for k, v := range ctx {
		merged[k] = v
	}
	for k, v := range p {
		merged[k] = v
	}
	b, err := json.Marshal(merged)
	return len(b), err
}

// finishRun ends a run that ran out of steps: succeeded, with its output
// mapping or its last step's output.
func (s *Service) finishRun(ctx context.Context, tx *postgres.Tx, st *runState, lastOutput json.RawMessage) error {
	output := lastOutput
	if st.def.Output != nil {
		rendered, err := st.def.Output.RenderJSON(ctx, st.activation())
		if err != nil {
			return s.endRun(ctx, tx, st.run.ID, workflow.RunFailed, nil, runError("the run's output mapping failed: "+err.Error(), "output_failed", "", nil), workflow.EventRunFailed)
		}
		output = rendered
	}
	return s.endRun(ctx, tx, st.run.ID, workflow.RunSucceeded, output, nil, workflow.EventRunSucceeded)
}

// endRun moves a run to a final status and drops its remaining work. The
// caller has dealt with its own work item already. A run that fails
// compensates first when it has steps to compensate: it ends later, when
// its compensations have run.
func (s *Service) endRun(ctx context.Context, tx *postgres.Tx, runID uuid.UUID, status workflow.RunStatus, output, runErr json.RawMessage, event string) error {
	if status == workflow.RunFailed {
		if compensating, err := s.startCompensation(ctx, tx, runID, runErr); err != nil || compensating {
			return err
		}
	}
	run, ok, err := tx.FinishRun(ctx, runID, status, output, runErr)
	if err != nil || !ok {
		return orStale(err, ok)
	}
	if err := tx.DeleteRunWork(ctx, runID); err != nil {
		return err
	}
	if err := tellParent(ctx, tx, run); err != nil {
		return err
	}
	var data map[string]any
	if runErr != nil {
		data = map[string]any{"error": runErr}
	}
	appendHistory(tx, runID, event, "", nil, data)
	return nil
}

// parkStep records a 202: the step waits for its callback until its
// callback timeout, and the run is waiting.
func (s *Service) parkStep(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result) error {
	wait := time.Duration(a.step.Call.CallbackTimeout)
	if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkStepTimeout, StepExecutionID: &a.execID, Attempt: a.number}, wait); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if _, err := tx.MarkRunWaiting(ctx, a.state.run.ID); err != nil {
		return err
	}
	if ok, err := tx.FinishStepAttempt(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "accepted", HTTPStatus: res.HTTPStatus}); err != nil || !ok {
		return orStale(err, ok)
	}
	deadline, ok, err := tx.ParkStep(ctx, a.execID, a.number, wait)
	if err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, a.state.run.ID, workflow.EventStepAccepted, a.key, &a.number, map[string]any{"deadline": deadline.UTC()})
	return nil
}

// retryStep records a failed attempt and schedules the next one after
// delay: durably, in the queue, so no worker sleeps through the backoff.
func (s *Service) retryStep(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage, httpStatus int, attemptStatus string, delay time.Duration) error {
	if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number + 1}, delay); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if ok, err := tx.FinishStepAttempt(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: attemptStatus, HTTPStatus: httpStatus, Error: stepErr}); err != nil || !ok {
		return orStale(err, ok)
	}
	if ok, err := tx.RetryStepLater(ctx, a.execID, a.number, stepErr); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, a.state.run.ID, workflow.EventStepRetryScheduled, a.key, &a.number,
		map[string]any{"http_status": httpStatus, "error": stepErr, "retry_in_ms": delay.Milliseconds()})
	return nil
}

// failStep records an attempt's failure as final: the step and the run fail.
func (s *Service) failStep(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage, httpStatus int, attemptStatus string) error {
	if ok, err := tx.CompleteWork(ctx, a.item); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: attemptStatus, HTTPStatus: httpStatus, Error: stepErr}, "failed", nil); err != nil || !ok {
		return orStale(err, ok)
	}
	return s.failRun(ctx, tx, a, stepErr)
}

// failStepExecution fails a step execution and its run; the attempt and the
// work item are dealt with already.
func (s *Service) failStepExecution(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage) error {
	if ok, err := tx.FinishStepExecution(ctx, a.execID, a.number, "failed", nil, stepErr); err != nil || !ok {
		return orStale(err, ok)
	}
	return s.failRun(ctx, tx, a, stepErr)
}

// failRun carries the failure of a step that failed for good outward,
// with the step's error: see [Service.propagateFailure].
func (s *Service) failRun(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage) error {
	appendHistory(tx, a.state.run.ID, workflow.EventStepFailed, a.key, &a.number, map[string]any{"error": stepErr})
	return s.propagateFailure(ctx, tx, a.state, a.key, a.execID, stepErr, false)
}

// propagateFailure carries the failure of the step execution key (execID)
// outward:
// the branches around it fail with it, then its lane fails, or at the top
// the run — failed, or timed_out when a wait timed out (timedOut). The
// step's own execution and work are dealt with already.
func (s *Service) propagateFailure(ctx context.Context, tx *postgres.Tx, st *runState, key string, execID uuid.UUID, stepErr json.RawMessage, timedOut bool) error {
	scope, name := splitKey(key)
	for p, list := st.def.Enclosing(name); p != nil; p, list = st.def.Enclosing(p.Name) {
		if p.OpensLanes() {
			// The failed step's work (a wait's timer, a parked step's
			// deadline) has nothing left to do.
			if err := tx.DropStepWork(ctx, st.run.ID, execID); err != nil {
				return err
			}
			return s.failLane(ctx, tx, st, laneKeyOf(scope, p, list), key, stepErr)
		}
		branch, err := tx.GetStepExecutionByKey(ctx, st.run.ID, scope+p.Name)
		if err != nil {
			return err
		}
		if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: branch.ID, Attempt: branch.Attempt, Status: "failed", Error: stepErr}, "failed", nil); err != nil || !ok {
			return orStale(err, ok)
		}
		appendHistory(tx, st.run.ID, workflow.EventStepFailed, branch.Key, &branch.Attempt, map[string]any{"error": stepErr})
	}
	status, code, event, message := workflow.RunFailed, "step_failed", workflow.EventRunFailed, withCause(fmt.Sprintf("step %s failed", key), stepErr)
	if timedOut {
		status, code, event, message = workflow.RunTimedOut, "wait_timed_out", workflow.EventRunTimedOut, fmt.Sprintf("step %s timed out waiting", key)
	}
	return s.endRun(ctx, tx, st.run.ID, status, nil, runError(message, code, key, stepErr), event)
}

// errorJSON is a step error of the engine's own making.
func errorJSON(message string, httpStatus int) json.RawMessage {
	e := map[string]any{"message": message}
	if httpStatus != 0 {
		e["status"] = httpStatus
	}
	b, _ := json.Marshal(e) // a map of a string and an int cannot fail
	return b
}

func runError(message, code, step string, details json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(workflow.RunError{Message: message, Code: code, Step: step, Details: details}) // strings and valid JSON cannot fail
	return b
}

// appendHistory appends one event to a run's history when tx commits.
// data must encode as JSON (maps of strings, numbers, times and raw JSON).
func appendHistory(tx *postgres.Tx, runID uuid.UUID, typ, stepKey string, attempt *int, data map[string]any) {
	var raw json.RawMessage
	if data != nil {
		raw, _ = json.Marshal(data) // the engine's own data always encodes
	}
	var n *int
	if attempt != nil {
		copied := *attempt
		n = &copied
	}
	tx.AppendHistory(postgres.NewHistoryEvent{RunID: runID, Type: typ, StepKey: stepKey, Attempt: n, Data: raw})
}
