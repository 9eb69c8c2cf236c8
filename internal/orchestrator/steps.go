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

	"github.com/durablehq/durable/internal/engine"
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

// runState is what a worker knows of a run while it advances it: see
// [engine.State].
type runState = engine.State

// loadRunState reads what expressions of a run may refer to in scope: its
// input, context, the outputs of its steps that succeeded (in scope and the
// scopes around it; inside a foreach item, the item's own steps), and the
// item and index of the foreach item that scope is in.
func (s *core) loadRunState(ctx context.Context, q runReader, run workflow.Run, scope string) (*runState, error) {
	def, err := s.definitionOf(ctx, q, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	st, err := engine.NewState(run, def)
	if err != nil {
		return nil, err
	}
	return st, enter(ctx, q, st, scope)
}

// inScope returns a copy of st for scope, sharing its decoded input and
// context: a worker going on with another lane of the run does not decode
// them again.
func inScope(ctx context.Context, q runReader, st *runState, scope string) (*runState, error) {
	moved := st.Copy()
	return moved, enter(ctx, q, moved, scope)
}

// enter moves st to scope, reading the step outputs and the item that
// scope sees.
func enter(ctx context.Context, q runReader, st *runState, scope string) error {
	st.Enter(scope)
	if st.Run.Status != workflow.RunPending {
		chain := engine.ScopeChain(scope)
		var names, keys []string
		st.Def.Walk(func(_ string, step *workflow.Step) bool {
			names = append(names, step.Name)
			for _, sc := range chain {
				keys = append(keys, sc+step.Name)
			}
			return true
		})
		outputs, err := q.StepOutputs(ctx, st.Run.ID, keys)
		if err != nil {
			return err
		}
		// The innermost scope's execution of a step is the one it sees.
		for _, sc := range chain {
			for _, name := range names {
				if out, ok := outputs[sc+name]; ok {
					if err := st.SetOutput(name, out); err != nil {
						return err
					}
				}
			}
		}
	}
	lane := innermostItem(st.Def, scope)
	if lane == "" {
		return nil
	}
	exec, err := q.GetStepExecutionByKey(ctx, st.Run.ID, lane)
	if err != nil {
		return err
	}
	var in itemOf
	if err := json.Unmarshal(exec.Input, &in); err != nil {
		return fmt.Errorf("decode item of lane %s: %w", exec.Key, err)
	}
	if st.Item, err = workflow.DecodeJSON(engine.OrNull(in.Item)); err != nil {
		return fmt.Errorf("decode item of lane %s: %w", exec.Key, err)
	}
	st.Index = in.Index
	return nil
}

// innermostItem is the key of the innermost foreach item's lane that scope
// is in, "" when it is in none (a loop's iterations have no item).
func innermostItem(def *workflow.Definition, scope string) string {
	chain := engine.ScopeChain(scope)
	for i := len(chain) - 1; i > 0; i-- {
		lane := strings.TrimSuffix(chain[i], ".")
		blockKey, _ := engine.LaneBlock(lane)
		if step := def.Step(engine.BlockName(blockKey)); step != nil && step.Foreach != nil {
			return lane
		}
	}
	return ""
}

type runReader interface {
	versionReader
	StepOutputs(ctx context.Context, runID uuid.UUID, keys []string) (map[string]json.RawMessage, error)
	GetStepExecutionByKey(ctx context.Context, runID uuid.UUID, key string) (workflow.StepExecution, error)
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
	// started is when the step execution was created: where its span
	// begins.
	started time.Time
	// successor is the next step's first attempt, once the hot path has
	// prepared it for this attempt's result (see [core.succeedAndContinue]).
	successor     *attempt
	successorHash []byte
	// bucket is the rate limit's bucket the attempt took its token from,
	// once it passed its limits (see [core.passFlow]).
	bucket string
}

// at is which attempt a is, as the engine's decisions need it.
func (a *attempt) at() engine.Attempt {
	return engine.Attempt{Number: a.number, Abandoned: a.abandoned}
}

// engine is the part of the limits the engine's decisions apply.
func (l Limits) engine() engine.Limits {
	return engine.Limits{MaxOutputBytes: l.MaxOutputBytes, MaxContextBytes: l.MaxContextBytes}
}

// judge decides what an answer does to a's step (see [engine.Judge]).
func (s *core) judge(a *attempt, res httpstep.Result) engine.Decision {
	return engine.Judge(a.state, a.step, a.at(), answerOf(res), s.limits.engine(), rand.Int64N)
}

// answerOf is an endpoint's answer as the engine reads it.
func answerOf(res httpstep.Result) engine.Answer {
	outcome := map[httpstep.Outcome]engine.Outcome{
		httpstep.Succeeded: engine.Succeeded, httpstep.Accepted: engine.Accepted,
		httpstep.Retryable: engine.Retryable, httpstep.Permanent: engine.Permanent,
	}[res.Outcome]
	return engine.Answer{
		Outcome: outcome, HTTPStatus: res.HTTPStatus, Output: res.Output, Context: res.Context,
		Logs: res.Logs, Error: res.Error, RetryAfter: res.RetryAfter,
	}
}

// leaseFor is how long a worker may hold a step's work: the attempt's
// timeout plus a margin for recording the result. A worker that dies loses
// its lease after that long.
func (s *core) leaseFor(step *workflow.Step) time.Duration {
	return time.Duration(step.Call.Timeout) + s.leaseMargin
}

// newAttemptRecord prepares attempt number n of a step execution: its
// callback token (of which only the hash is stored) and deadline.
func (s *core) newAttemptRecord(a *attempt) ([]byte, error) {
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
	a := &attempt{item: item, state: st, step: step, key: st.Key(step.Name), execID: uuid.Must(uuid.NewV7()), number: 1, started: time.Now()}
	a.webhook = "msg_" + a.execID.String()
	return a
}

// execution is what the database needs to create a's step execution, with
// input.
func (s *core) execution(a *attempt, input json.RawMessage) postgres.NewStepExecution {
	return postgres.NewStepExecution{
		ID: a.execID, Key: a.key, ParentKey: a.state.ParentKey(a.step.Name), Name: a.step.Name, Type: string(a.step.Type),
		WebhookID: a.webhook, Input: input, WorkerID: s.workerID,
	}
}

// beginExecution creates a step execution that the engine runs itself (a
// branch, a block) or that fails before it could begin, under the work
// item's lease, and marks the run running.
func (s *core) beginExecution(ctx context.Context, tx *postgres.Tx, st *runState, item postgres.WorkItem, exec postgres.NewStepExecution) error {
	started, err := tx.StartSteps(ctx, []postgres.StepStart{{
		Work: item, Lease: s.leaseMargin, Exec: exec,
		MarkRunning: st.Run.Status != workflow.RunRunning, RunStarted: st.Run.Status == workflow.RunPending,
	}})
	if err != nil || !started[0] {
		return orLeaseLost(err, err == nil && started[0])
	}
	st.Run.Status = workflow.RunRunning
	return nil
}

// newAttempt prepares the first attempt of a step execution not created
// yet: its ids, callback token (of which only hash is stored) and deadline.
func (s *core) newAttempt(item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, []byte, error) {
	a := newExecution(item, st, step)
	hash, err := s.newAttemptRecord(a)
	return a, hash, err
}

// startStep starts the first attempt of step in tx, pointing the work item
// at it under the caller's lease, with its input rendered from what the run
// knows now. When the input cannot be built, the step and the run fail
// instead, and startStep returns nil.
func (s *core) startStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
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
	if step.Loop != nil {
		return s.startLoop(ctx, tx, item, st, step)
	}
	if step.Call.HasFlowLimits() {
		return s.startHeldStep(ctx, tx, item, st, step)
	}
	a, start, renderErr, err := s.prepareStart(ctx, item, st, step)
	if err != nil {
		return nil, err
	}
	return s.startPrepared(ctx, tx, a, start, renderErr)
}

// startPrepared starts an attempt [core.prepareStart] prepared; when its
// input could not be built, the step and the run fail instead, and it
// returns nil.
func (s *core) startPrepared(ctx context.Context, tx *postgres.Tx, a *attempt, start postgres.StepStart, renderErr error) (*attempt, error) {
	started, err := tx.StartSteps(ctx, []postgres.StepStart{start})
	if err != nil || !started[0] {
		return nil, orLeaseLost(err, err == nil && started[0])
	}
	a.state.Run.Status = workflow.RunRunning
	if renderErr != nil {
		stepErr := engine.ErrorJSON(fmt.Sprintf("the step's input could not be built: %v", renderErr), 0)
		return nil, s.failStep(ctx, tx, a, stepErr, 0, "failed")
	}
	return a, nil
}

// prepareStart prepares the first attempt of step without touching the
// database: its ids and callback token, its input rendered from what the
// run knows now (renderErr when that fails; the input is then null), and
// what [postgres.Tx.StartSteps] needs to start it.
func (s *core) prepareStart(ctx context.Context, item postgres.WorkItem, st *runState, step *workflow.Step) (a *attempt, start postgres.StepStart, renderErr error, err error) {
	a, hash, err := s.newAttempt(item, st, step)
	if err != nil {
		return nil, start, nil, err
	}
	input, renderErr := st.RenderInput(ctx, step, s.limits.engine())
	if renderErr == nil {
		a.input = input
	}
	exec := s.execution(a, a.input)
	exec.Timeout, exec.CallbackHash = time.Duration(step.Call.Timeout), hash
	start = postgres.StepStart{
		Work: item, Lease: s.leaseFor(step), Exec: exec,
		MarkRunning: st.Run.Status != workflow.RunRunning, RunStarted: st.Run.Status == workflow.RunPending,
	}
	return a, start, renderErr, nil
}

// restartStep starts the next attempt of a step execution that failed
// retryably, or whose worker was lost.
func (s *core) restartStep(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, exec workflow.StepExecution) (*attempt, error) {
	step := st.Def.Step(exec.Name)
	if step == nil || step.Call == nil {
		return nil, fmt.Errorf("step %q of run %s is not a call step of %s v%d", exec.Name, st.Run.ID, st.Run.Workflow, st.Run.Version)
	}
	a := &attempt{
		item: item, state: st, step: step, key: exec.Key, execID: exec.ID, webhook: exec.WebhookID, number: item.Attempt,
		abandoned: exec.Abandoned, input: exec.Input, started: exec.CreatedAt,
	}
	switch engine.Resume(exec.Status, exec.Attempt, item.Attempt) {
	case engine.GoOn:
		ok, err := tx.RescheduleWork(ctx, item, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: exec.Key}, 0)
		return nil, orLeaseLost(err, ok)
	case engine.Drop:
		_, err := tx.CompleteWork(ctx, item)
		return nil, err
	case engine.AbandonAndInvoke:
		// The worker making this attempt stopped answering and its lease
		// expired: the attempt is abandoned, and the next one starts.
		lost := engine.ErrorJSON("the worker making this attempt stopped answering; its lease expired", 0)
		n, ok, err := tx.AbandonStepAttempt(ctx, exec.ID, exec.Attempt, lost)
		if err != nil || !ok {
			return nil, orStale(err, ok)
		}
		appendHistory(tx, st.Run.ID, workflow.EventStepAbandoned, exec.Key, &exec.Attempt, map[string]any{"error": lost})
		a.number, a.abandoned = exec.Attempt+1, n
	}
	if exhausted := engine.Exhausted(step.Call.Retry, a.at()); exhausted != "" {
		a.number--
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
		return nil, s.failStepExecution(ctx, tx, a, engine.ErrorJSON(exhausted, 0))
	}
	if step.Call.HasFlowLimits() {
		if held, err := s.passFlow(ctx, tx, a); err != nil || held {
			return nil, s.failHeld(ctx, tx, a, err)
		}
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
	if st.Run.Status != workflow.RunRunning {
		if _, err := tx.MarkRunRunning(ctx, st.Run.ID); err != nil {
			return nil, err
		}
		st.Run.Status = workflow.RunRunning
	}
	if err := tx.InsertStepAttempt(ctx, exec.ID, a.number, st.Run.ID, s.workerID, hash); err != nil {
		return nil, err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepStarted, exec.Key, &a.number, nil)
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
func (s *core) currentAttempt(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, run workflow.Run, exec workflow.StepExecution) (*attempt, error) {
	def, err := s.definitionOf(ctx, tx, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	step := def.Step(exec.Name)
	if step == nil {
		return nil, fmt.Errorf("run %s has no step %q in %s v%d", run.ID, exec.Name, run.Workflow, run.Version)
	}
	scope, _ := engine.SplitKey(exec.Key)
	st := &runState{Run: run, Def: def}
	st.Enter(scope)
	return &attempt{
		item: item, state: st, step: step, key: exec.Key, execID: exec.ID,
		webhook: exec.WebhookID, number: exec.Attempt, abandoned: exec.Abandoned, started: exec.CreatedAt,
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
func (s *core) request(ctx context.Context, a *attempt) (httpstep.Request, error) {
	callbackDeadline := time.Now().Add(time.Duration(a.step.Call.CallbackTimeout)).UTC().Truncate(time.Second)
	body, err := json.Marshal(stepRequestBody{
		RunID: a.state.Run.ID, Workflow: workflowRef{a.state.Run.Workflow, a.state.Run.Version},
		Step: a.step.Name, Attempt: a.number, Input: a.input, Context: a.state.CtxRaw,
		CallbackURL: s.publicURL + "/v1/callbacks/" + a.token, Deadline: a.deadline.UTC().Truncate(time.Second),
		CallbackDeadline: &callbackDeadline,
	})
	if err != nil {
		return httpstep.Request{}, fmt.Errorf("encode step request: %w", err)
	}
	headers, err := a.step.Call.RenderHeaders(ctx, a.state.Activation())
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
func (s *core) recordResult(ctx context.Context, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	if next, ok, err := s.succeedAndContinue(ctx, a, res, draining); ok || err != nil {
		return next, err
	}
	var next *attempt
	record := func(ctx context.Context, tx *postgres.Tx) error {
		if err := s.lockToRecord(ctx, tx, a); err != nil {
			return err
		}
		if a.step.Call.HasFlowLimits() {
			if err := s.leaveFlow(ctx, tx, a, res.HTTPStatus, res.RetryAfter); err != nil {
				return err
			}
		}
		var err error
		next, err = s.recordResultTx(ctx, tx, a, res, draining)
		return err
	}
	var err error
	switch lane := s.prepareLastOfLane(a, res, draining); {
	case lane != nil:
		err = s.inTurn(ctx, a.state.Run.ID, a.item, lane, func(ctx context.Context, tx *postgres.Tx) error {
			var err error
			next, err = s.succeedLastOfLane(ctx, tx, a, res, lane)
			return err
		})
	case a.state.Def.HasLanes():
		err = s.inTurn(ctx, a.state.Run.ID, a.item, nil, record)
	default:
		err = s.db.InTx(ctx, func(tx *postgres.Tx) error { return record(ctx, tx) })
	}
	if err != nil {
		return nil, err
	}
	return next, nil
}

// lockToRecord locks the work item of an attempt whose result is to be
// recorded. In a run with lanes it locks the run's row too, and brings the
// worker's view of the context up to date: other lanes may have merged
// into it since the worker read it, and the steps it starts next send it.
func (s *core) lockToRecord(ctx context.Context, tx *postgres.Tx, a *attempt) error {
	if !a.state.Def.HasLanes() {
		ok, err := tx.LockLeasedWork(ctx, a.item)
		return orLeaseLost(err, ok)
	}
	current, ok, err := tx.LockLeasedWorkAndRun(ctx, a.item)
	if err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if bytes.Equal(current, a.state.CtxRaw) {
		return nil
	}
	return a.state.SetContext(current)
}

func (s *core) recordResultTx(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	switch d := s.judge(a, res); d.Verdict {
	case engine.Succeed:
		return s.succeedStep(ctx, tx, a, res, d, draining)
	case engine.Park:
		return nil, s.parkStep(ctx, tx, a, res)
	case engine.Retry:
		return nil, s.retryStep(ctx, tx, a, d.Error, res.HTTPStatus, "failed", d.Delay)
	default:
		return nil, s.failStep(ctx, tx, a, d.Error, res.HTTPStatus, "failed")
	}
}

// succeedAndContinue is the hot path of [core.recordResult]: a step
// succeeded and the run goes on to its next step, recorded in one statement
// (see [postgres.DB.SucceedAndContinue]). It returns false, having done
// nothing, when the case is not that simple — the run ends, the worker is
// draining, a limit is exceeded or the next step's input cannot be built —
// and the general path must record the result.
func (s *core) succeedAndContinue(ctx context.Context, a *attempt, res httpstep.Result, draining bool) (*attempt, bool, error) {
	st := a.state
	// A step in a lane takes the general path, which locks the run's row:
	// the lanes of a run take turns.
	if draining || st.Run.Status != workflow.RunRunning || (st.Def.HasLanes() && engine.LaneOf(st.Def, st.Scope, a.step.Name) != "") {
		return nil, false, nil
	}
	d := s.judge(a, res)
	after := engine.After(st.Def, st.Scope, a.step.Name)
	step := after.Step
	if d.Verdict != engine.Succeed || step == nil || step.Call == nil || len(after.Ended) > 0 ||
		a.step.Call.HasFlowLimits() || step.Call.HasFlowLimits() {
		// A step with flow limits gives its places back, and the next one
		// passes its limits, on the general path.
		return nil, false, nil
	}
	// A failed merge or render below leaves st changed; the general path
	// that then runs sets the context and the output again.
	patch, output := d.Patch, d.Output
	if patch != nil {
		if err := st.MergeContext(patch); err != nil || len(st.CtxRaw) > s.limits.MaxContextBytes {
			return nil, false, nil
		}
	}
	if err := st.SetOutput(a.step.Name, output); err != nil {
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
	input, err := st.RenderInput(ctx, step, s.limits.engine())
	if err != nil {
		return nil, false, nil
	}
	next.input = input
	succeeded, _ := json.Marshal(map[string]any{"http_status": res.HTTPStatus, "duration_ms": res.Duration.Milliseconds()})
	ok, full, err := s.db.SucceedAndContinue(ctx, postgres.SucceedAndContinue{
		Work: a.item, Lease: s.leaseFor(step),
		Result: postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, HTTPStatus: res.HTTPStatus, Logs: res.Logs},
		Output: output, ContextPatch: patch, StepKey: a.key, Succeeded: succeeded,
		Next: postgres.NewStepExecution{
			ID: next.execID, Key: next.key, ParentKey: st.ParentKey(step.Name), Name: step.Name, Type: string(step.Type), WebhookID: next.webhook,
			Input: input, Timeout: time.Duration(step.Call.Timeout), WorkerID: s.workerID, CallbackHash: hash,
		},
	})
	if err != nil {
		return nil, true, err
	}
	if full {
		// The general path's transaction ends the run at its cap.
		return nil, false, nil
	}
	if !ok {
		return nil, true, errLeaseLost
	}
	s.stepDone(ctx, finishedStep{
		run: st.Run, execID: a.execID, key: a.key, name: a.step.Name, started: a.started, attempts: a.number, outcome: StepSucceeded,
	})()
	return next, true, nil
}

// succeedStep records the success of a call step's attempt and goes on:
// it starts the next step, or ends the lane, the iteration or the run. A
// draining worker leaves the going on to the advance item it leaves behind.
func (s *core) succeedStep(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result, d engine.Decision, draining bool) (*attempt, error) {
	if draining {
		if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: a.key}, 0); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
	}
	if _, err := s.recordSuccess(ctx, tx, a, success{
		output: d.Output, patch: d.Patch, httpStatus: res.HTTPStatus, logs: res.Logs,
		data: map[string]any{"http_status": res.HTTPStatus, "duration_ms": res.Duration.Milliseconds()},
	}); err != nil || draining {
		return nil, err
	}
	st := a.state
	return s.goOn(ctx, tx, a.item, st, engine.After(st.Def, st.Scope, a.step.Name), d.Output)
}

// success is how a step execution succeeded: its output and context
// answer, and what its attempt and the history record.
type success struct {
	output, patch json.RawMessage
	// attemptStatus is the attempt's own status: "succeeded" unless a wait
	// timed out and continues the run ("timed_out").
	attemptStatus string
	httpStatus    int
	logs          json.RawMessage
	// closeWaits is set for a waiting step: its waits for events close.
	closeWaits bool
	data       map[string]any
}

// recordSuccess writes the success of a's step execution: the one place a
// step's success is written (the hot path [postgres.DB.SucceedAndContinue]
// is its fast form). It merges the context answer into the run's and
// returns the context as it is then; what follows is the caller's.
func (s *core) recordSuccess(ctx context.Context, tx *postgres.Tx, a *attempt, sc success) (json.RawMessage, error) {
	st := a.state
	var merged json.RawMessage
	if sc.patch != nil {
		var err error
		if merged, err = tx.MergeRunContext(ctx, st.Run.ID, sc.patch); err != nil {
			return nil, err
		}
		if err := st.SetContext(merged); err != nil {
			return nil, err
		}
	}
	if sc.attemptStatus == "" {
		sc.attemptStatus = "succeeded"
	}
	output := engine.OrNull(sc.output)
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{
		StepExecutionID: a.execID, Attempt: a.number, Status: sc.attemptStatus, HTTPStatus: sc.httpStatus, Logs: sc.logs,
	}, "succeeded", output); err != nil || !ok {
		return nil, orStale(err, ok)
	}
	if sc.closeWaits {
		if err := tx.CloseStepWaits(ctx, a.execID, "cancelled"); err != nil {
			return nil, err
		}
	}
	if err := st.SetOutput(a.step.Name, output); err != nil {
		return nil, err
	}
	appendHistory(tx, st.Run.ID, workflow.EventStepSucceeded, a.key, &a.number, sc.data)
	s.stepEnded(ctx, tx, a, StepSucceeded, nil)
	return merged, nil
}

// advance starts what follows the position key names — after a step, or a
// lane's first step — for a work item that a worker claimed: the next step,
// or the end of the enclosing branches, iteration, lane or run. Nothing
// starts in a lane that a failing sibling cancelled meanwhile.
func (s *core) advance(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, key string) (*attempt, error) {
	if engine.IsLaneKey(key) {
		return s.startLane(ctx, tx, item, st, key)
	}
	_, name := engine.SplitKey(key)
	if lane := engine.LaneOf(st.Def, st.Scope, name); lane != "" {
		if gone, err := s.laneGone(ctx, tx, item, st, lane); err != nil || gone {
			return nil, err
		}
	}
	return s.goOn(ctx, tx, item, st, engine.After(st.Def, st.Scope, name), st.Outputs[name])
}

// goOn applies what follows a step that succeeded with output (see
// [engine.After]), for a worker holding item: the branches that end with it
// succeed, then the next step starts, or the lane, the loop's iteration or
// the run ends.
func (s *core) goOn(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, next engine.Next, output json.RawMessage) (*attempt, error) {
	for _, e := range next.Ended {
		if err := s.finishEnclosing(ctx, tx, st, e.Key, output, nil); err != nil {
			return nil, err
		}
		if err := st.SetOutput(e.Step.Name, output); err != nil {
			return nil, err
		}
	}
	switch {
	case next.Step != nil:
		return s.startStep(ctx, tx, item, st, next.Step)
	case next.Lane != "":
		return s.endLane(ctx, tx, item, st, next.Lane, output)
	case next.Loop != nil:
		return s.endIteration(ctx, tx, item, st, *next.Loop, output)
	}
	if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
		return nil, orLeaseLost(err, ok)
	}
	return nil, s.endRun(ctx, tx, st.Run.ID, st.Finish(ctx, output))
}

// finishEnclosing ends the execution key of a step that the engine runs
// itself (a branch, a loop): it succeeds with output, or fails with stepErr
// when that is set.
func (s *core) finishEnclosing(ctx context.Context, tx *postgres.Tx, st *runState, key string, output, stepErr json.RawMessage) error {
	exec, err := tx.GetStepExecutionByKey(ctx, st.Run.ID, key)
	if err != nil {
		return err
	}
	status, event, data := "succeeded", workflow.EventStepSucceeded, map[string]any(nil)
	if stepErr != nil {
		status, event, data, output = "failed", workflow.EventStepFailed, map[string]any{"error": stepErr}, nil
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: exec.ID, Attempt: exec.Attempt, Status: status, Error: stepErr}, status, output); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, st.Run.ID, event, exec.Key, &exec.Attempt, data)
	tx.AfterCommit(s.stepDone(ctx, finishedStep{
		run: st.Run, execID: exec.ID, key: exec.Key, name: exec.Name, started: exec.CreatedAt,
		attempts: exec.Attempt, outcome: status, err: stepErr,
	}))
	return nil
}

// startBranch starts a branch step: it records the branch's execution with
// the case it chose, and starts that case's first step. A branch whose
// selection fails, or where no case matches and there is no default, fails
// the step and the run.
func (s *core) startBranch(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	index, steps, selErr := step.Branch.Select(ctx, st.Activation())
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
		return nil, s.failStep(ctx, tx, a, engine.ErrorJSON(fmt.Sprintf("the branch could not choose a case: %v", selErr), 0), 0, "failed")
	case len(steps) == 0:
		return nil, s.failStep(ctx, tx, a, engine.ErrorJSON("no case of the branch matched, and it has no default", 0), 0, "failed")
	}
	return s.startStep(ctx, tx, item, st, steps[0])
}

// endRun moves a run to its final status and drops its remaining work. The
// caller has dealt with its own work item already. A run that fails
// compensates first when it has steps to compensate: it ends later, when
// its compensations have run.
func (s *core) endRun(ctx context.Context, tx *postgres.Tx, runID uuid.UUID, end engine.RunEnd) error {
	if end.Status == workflow.RunFailed {
		if compensating, err := s.startCompensation(ctx, tx, runID, end.Error); err != nil || compensating {
			return err
		}
	}
	run, ok, err := tx.FinishRun(ctx, runID, end.Status, end.Output, end.Error)
	if err != nil || !ok {
		return orStale(err, ok)
	}
	s.endRunSpan(ctx, tx, run)
	if err := tx.DeleteRunWork(ctx, runID); err != nil {
		return err
	}
	if err := tellParent(ctx, tx, run); err != nil {
		return err
	}
	var data map[string]any
	if end.Error != nil {
		data = map[string]any{"error": end.Error}
	}
	appendHistory(tx, runID, end.Event, "", nil, data)
	s.runEnded(ctx, tx, run, end.Status, end.Error)
	return nil
}

// parkStep records a 202: the step waits for its callback until its
// callback timeout, and the run is waiting.
func (s *core) parkStep(ctx context.Context, tx *postgres.Tx, a *attempt, res httpstep.Result) error {
	wait := time.Duration(a.step.Call.CallbackTimeout)
	if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkStepTimeout, StepExecutionID: &a.execID, Attempt: a.number}, wait); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	if _, err := tx.MarkRunWaiting(ctx, a.state.Run.ID); err != nil {
		return err
	}
	if ok, err := tx.FinishStepAttempt(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: "accepted", HTTPStatus: res.HTTPStatus}); err != nil || !ok {
		return orStale(err, ok)
	}
	deadline, ok, err := tx.ParkStep(ctx, a.execID, a.number, wait)
	if err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, a.state.Run.ID, workflow.EventStepAccepted, a.key, &a.number, map[string]any{"deadline": deadline.UTC()})
	s.countStep(tx, a.state.Run, a.key, StepAccepted)
	return nil
}

// retryStep records a failed attempt and schedules the next one after
// delay: durably, in the queue, so no worker sleeps through the backoff.
func (s *core) retryStep(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage, httpStatus int, attemptStatus string, delay time.Duration) error {
	if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number + 1}, delay); err != nil || !ok {
		return orLeaseLost(err, ok)
	}
	return s.recordRetry(ctx, tx, a, stepErr, httpStatus, attemptStatus, delay, map[string]any{"http_status": httpStatus})
}

// recordRetry writes that a's attempt failed and its step is retried after
// delay, the history saying so with data added; the work item that makes
// the next attempt is the caller's.
func (s *core) recordRetry(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage, httpStatus int, attemptStatus string, delay time.Duration, data map[string]any) error {
	if ok, err := tx.FinishStepAttempt(ctx, postgres.AttemptResult{StepExecutionID: a.execID, Attempt: a.number, Status: attemptStatus, HTTPStatus: httpStatus, Error: stepErr}); err != nil || !ok {
		return orStale(err, ok)
	}
	if ok, err := tx.RetryStepLater(ctx, a.execID, a.number, stepErr); err != nil || !ok {
		return orStale(err, ok)
	}
	data["error"], data["retry_in_ms"] = stepErr, delay.Milliseconds()
	appendHistory(tx, a.state.Run.ID, workflow.EventStepRetryScheduled, a.key, &a.number, data)
	s.countStep(tx, a.state.Run, a.key, StepRetried)
	return nil
}

// failStep records an attempt's failure as final: the step and the run fail.
func (s *core) failStep(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage, httpStatus int, attemptStatus string) error {
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
func (s *core) failStepExecution(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage) error {
	if ok, err := tx.FinishStepExecution(ctx, a.execID, a.number, "failed", nil, stepErr); err != nil || !ok {
		return orStale(err, ok)
	}
	return s.failRun(ctx, tx, a, stepErr)
}

// failRun carries the failure of a step that failed for good outward,
// with the step's error: see [core.propagateFailure].
func (s *core) failRun(ctx context.Context, tx *postgres.Tx, a *attempt, stepErr json.RawMessage) error {
	appendHistory(tx, a.state.Run.ID, workflow.EventStepFailed, a.key, &a.number, map[string]any{"error": stepErr})
	s.stepEnded(ctx, tx, a, StepFailed, stepErr)
	return s.propagateFailure(ctx, tx, a.state, a.key, a.execID, stepErr, false)
}

// propagateFailure carries the failure of the step execution key (execID)
// outward (see [engine.FailureOf]): the branches and loops around it fail
// with it, then its lane fails, or at the top the run — failed, or
// timed_out when a wait timed out (timedOut). The step's own execution and
// work are dealt with already.
func (s *core) propagateFailure(ctx context.Context, tx *postgres.Tx, st *runState, key string, execID uuid.UUID, stepErr json.RawMessage, timedOut bool) error {
	f := engine.FailureOf(st.Def, key)
	for _, e := range f.Failed {
		if err := s.finishEnclosing(ctx, tx, st, e.Key, nil, stepErr); err != nil {
			return err
		}
	}
	if f.Lane != "" {
		// The failed step's work (a wait's timer, a parked step's
		// deadline) has nothing left to do.
		if err := tx.DropStepWork(ctx, st.Run.ID, execID); err != nil {
			return err
		}
		return s.failLane(ctx, tx, st, f.Lane, key, stepErr)
	}
	return s.endRun(ctx, tx, st.Run.ID, engine.RunFails(key, stepErr, timedOut))
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
