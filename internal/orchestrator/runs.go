package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/signing"
	"github.com/durablehq/durable/internal/workflow"
)

// StartRun asks for a run of a workflow.
type StartRun struct {
	Workflow string
	Version  int             // 0: the latest version
	Input    json.RawMessage // nil or null: an empty object
	// IdempotencyKey, when set, makes the start idempotent: the same key with
	// the same request returns the run it started; with a different request
	// it is a conflict.
	IdempotencyKey string
	// Parent is the caller's span (see [TraceParent]): the run's span is
	// its child, in its trace. An invalid one begins a new trace.
	Parent trace.SpanContext
	// Priority orders the run's due work (0–100); nil: the default, 50.
	Priority *int
}

// StartRun creates a run and its first piece of work in one transaction.
// It returns false when an earlier request with the same idempotency key
// created the run already, or when the workflow's debounce folded the start
// into a run that had not begun (its input is then this start's).
func (s *API) StartRun(ctx context.Context, req StartRun) (workflow.Run, bool, error) {
	if req.Priority != nil && (*req.Priority < 0 || *req.Priority > 100) {
		return workflow.Run{}, false, fault.WithProblems(fault.Invalid, "the priority is out of range", []fault.Problem{{
			Path: "/priority", Message: "must be an integer from 0 to 100",
		}})
	}
	if len(req.Input) == 0 || string(req.Input) == "null" {
		req.Input = json.RawMessage(`{}`)
	}
	if len(req.Input) > s.limits.MaxInputBytes {
		return workflow.Run{}, false, fault.WithProblems(fault.TooLarge, "the run input is too large", []fault.Problem{{
			Path: "/input", Message: fmt.Sprintf("input is %d bytes; the limit is %d", len(req.Input), s.limits.MaxInputBytes),
		}})
	}
	input, err := canonicalJSON(req.Input)
	if err != nil {
		return workflow.Run{}, false, fault.WithProblems(fault.Invalid, "the run input is not valid JSON", []fault.Problem{{Path: "/input", Message: err.Error()}})
	}
	requestHash := startRequestHash(req.Workflow, req.Version, input)
	if req.IdempotencyKey != "" {
		if run, ok, err := s.existingRun(ctx, req.IdempotencyKey, requestHash); err != nil || ok {
			return run, false, err
		}
	}

	// Everything, reads included, happens in one transaction, which starts
	// that arrive together share: a run start costs the database a share
	// of one commit. A start touches only its own new rows (and the unique
	// index of idempotency keys), so sharing holds no one up.
	var run workflow.Run
	var outcome startOutcome
	err = s.db.InGroupTx(ctx, func(ctx context.Context, tx *postgres.Tx) (err error) {
		run, outcome, err = s.startRunTx(ctx, tx, req.Workflow, req.Version, newRunInput{
			input: input, idempotencyKey: req.IdempotencyKey, requestHash: requestHash, parent: req.Parent,
			priority: req.Priority, debounce: true,
		})
		return err
	})
	if err != nil {
		return workflow.Run{}, false, fmt.Errorf("start run of %s: %w", req.Workflow, err)
	}
	switch outcome {
	case runFolded:
		return run, false, nil
	case runKeyTaken:
		// A concurrent request with the same key won the insert.
		run, ok, err := s.existingRun(ctx, req.IdempotencyKey, requestHash)
		if err == nil && !ok {
			err = fmt.Errorf("run with idempotency key vanished")
		}
		return run, false, err
	}
	return run, true, nil
}

// startOutcome is what a start did.
type startOutcome int

const (
	runStarted  startOutcome = iota // a new run
	runKeyTaken                     // nothing: the idempotency key was taken
	runFolded                       // the debounce folded it into a pending run
)

// newRunInput is what starting a run takes beyond its workflow.
type newRunInput struct {
	id             uuid.UUID       // uuid.Nil: a new one
	input          json.RawMessage // canonical JSON
	idempotencyKey string
	requestHash    []byte
	scheduleID     *uuid.UUID
	parentRunID    *uuid.UUID // a child run's parent run
	parentStepID   *uuid.UUID // and the parent's call_workflow step execution
	depth          int
	// parent is the span the run's span is a child of; invalid: none.
	parent trace.SpanContext
	// priority is the run's (nil: the default); debounce applies the
	// workflow's debounce, which only starts through the API do.
	priority *int
	debounce bool
}

// startRunTx creates a run of a workflow version (0: the latest) and its
// first piece of work in tx. It creates nothing when the run's idempotency
// key is taken, or when the workflow's debounce folds the start into a run
// that has not begun, which it returns. A run of a workflow with
// concurrency limits that has no room is created queued, without work.
func (s *core) startRunTx(ctx context.Context, tx *postgres.Tx, name string, version int, in newRunInput) (workflow.Run, startOutcome, error) {
	v, err := resolveVersion(ctx, tx, name, version)
	if err != nil {
		return workflow.Run{}, runKeyTaken, err
	}
	def, err := s.definition(v)
	if err != nil {
		return workflow.Run{}, runKeyTaken, err
	}
	priority := workflow.DefaultPriority
	if in.priority != nil {
		priority = *in.priority
	}
	// The run's first work is due by its priority, or after the debounce.
	delay := -headStart(priority)
	var debounceKey string
	if in.debounce && def.Debounce != nil {
		if debounceKey, err = evalDebounceKey(ctx, def, in.input); err != nil {
			return workflow.Run{}, runKeyTaken, err
		}
		folded, err := tx.Debounce(ctx, v.Name, debounceKey, in.input, time.Duration(def.Debounce.Period), time.Duration(def.Debounce.MaxWait))
		if err != nil {
			return workflow.Run{}, runKeyTaken, err
		}
		if folded != uuid.Nil {
			run, err := tx.GetRun(ctx, folded)
			return run, runFolded, err
		}
		delay = time.Duration(def.Debounce.Period)
	}
	if in.id == uuid.Nil {
		in.id = uuid.Must(uuid.NewV7())
	}
	run, inserted, err := tx.InsertRun(ctx, postgres.NewRun{
		ID: in.id, Workflow: v.Name, Version: v.Version, Input: in.input,
		IdempotencyKey: in.idempotencyKey, RequestHash: in.requestHash, ScheduleID: in.scheduleID,
		ParentRunID: in.parentRunID, ParentStepExecutionID: in.parentStepID, Depth: in.depth,
		Timeout: time.Duration(def.Timeout), Trace: newRunTrace(in.parent), HistoryCap: s.limits.MaxHistoryEvents,
		Priority: priority,
	})
	if err != nil || !inserted {
		return run, runKeyTaken, err
	}
	data := map[string]any{"workflow": run.Workflow, "version": run.Version}
	if in.idempotencyKey != "" {
		data["idempotency_key"] = in.idempotencyKey
	}
	if in.scheduleID != nil {
		data["schedule_id"] = in.scheduleID.String()
	}
	if in.parentRunID != nil {
		data["parent_run_id"] = in.parentRunID.String()
	}
	if priority != workflow.DefaultPriority {
		data["priority"] = priority
	}
	appendHistory(tx, run.ID, workflow.EventRunCreated, "", nil, data)
	s.runStarted(ctx, tx, run)
	if debounceKey != "" {
		if err := tx.RecordDebounce(ctx, v.Name, debounceKey, run.ID); err != nil {
			return run, runStarted, err
		}
	}
	entered := true
	if len(def.Concurrency) > 0 {
		if entered, err = s.enterRun(ctx, tx, def, &run, priority); err != nil {
			return run, runStarted, err
		}
	}
	if entered {
		if err := tx.EnqueueWork(ctx, run.ID, postgres.WorkTarget{Kind: postgres.WorkAdvance}, delay); err != nil {
			return run, runStarted, err
		}
	}
	if def.Timeout > 0 {
		if err := tx.EnqueueWork(ctx, run.ID, postgres.WorkTarget{Kind: postgres.WorkRunTimeout}, time.Duration(def.Timeout)); err != nil {
			return run, runStarted, err
		}
	}
	return run, runStarted, nil
}

// evalDebounceKey evaluates a workflow's debounce key against a start's
// input; a key that cannot be evaluated refuses the start.
func evalDebounceKey(ctx context.Context, def *workflow.Definition, input []byte) (string, error) {
	v, err := workflow.DecodeJSON(input)
	if err == nil {
		var key string
		if key, err = workflow.FlowKey(ctx, def.Debounce.Key, workflow.Activation{Input: v}); err == nil {
			return key, nil
		}
	}
	msg := fmt.Sprintf("the workflow's debounce key could not be evaluated: %v", err)
	return "", fault.WithProblems(fault.Invalid, msg, []fault.Problem{{Path: "/input", Message: msg}})
}

// existingRun returns the run started with key, if any, and refuses a
// reused key whose request differs.
func (s *core) existingRun(ctx context.Context, key string, requestHash []byte) (workflow.Run, bool, error) {
	run, err := s.db.GetRunByIdempotencyKey(ctx, key)
	if fault.Is(err, fault.NotFound) {
		return workflow.Run{}, false, nil
	}
	if err != nil {
		return workflow.Run{}, false, err
	}
	if !bytes.Equal(run.RequestHash, requestHash) {
		return workflow.Run{}, false, fault.New(fault.Conflict,
			"the Idempotency-Key was used for run %s with a different request", run.ID)
	}
	return run, true, nil
}

// resolveVersion finds the workflow version a run will be pinned to; a
// workflow that is archived has none (a conflict).
func resolveVersion(ctx context.Context, tx *postgres.Tx, name string, version int) (workflow.WorkflowVersion, error) {
	var v workflow.WorkflowVersion
	var err error
	if version == 0 {
		v, err = tx.GetLatestWorkflowVersion(ctx, name)
	} else {
		v, err = tx.GetWorkflowVersion(ctx, name, version)
	}
	if fault.Is(err, fault.NotFound) {
		path := "/workflow"
		if version != 0 {
			path = "/version"
		}
		return v, fault.WithProblems(fault.Invalid, err.Error(), []fault.Problem{{Path: path, Message: err.Error()}})
	}
	if err == nil && v.ArchivedAt != nil {
		return v, archivedError(name)
	}
	return v, err
}

// startRequestHash fingerprints what a start request asks for, so that a
// reused idempotency key with another request is recognised.
func startRequestHash(name string, version int, canonicalInput []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(version)))
	h.Write([]byte{0})
	h.Write(canonicalInput)
	return h.Sum(nil)
}

// canonicalJSON re-encodes a JSON document with sorted object keys and no
// insignificant whitespace, keeping numbers exactly as written.
func canonicalJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// RunDetail is a run with what it waits for.
type RunDetail struct {
	workflow.Run
	Waiting []WaitingStep
}

// WaitingStep is a step of a run that waits: a sleep, a wait for events (with
// their names and keys) or for a person (with the question).
type WaitingStep struct {
	Step     string
	Type     string
	Deadline *time.Time
	Events   []workflow.Wait
	Question *Question
	// CallbackURL answers a wait for a person, without an API key.
	CallbackURL string
}

// GetRun returns a run and, while it waits, what it waits for.
func (s *API) GetRun(ctx context.Context, id uuid.UUID) (RunDetail, error) {
	run, err := s.db.GetRun(ctx, id)
	if err != nil || run.Status != workflow.RunWaiting {
		return RunDetail{Run: run}, err
	}
	steps, err := s.db.WaitingSteps(ctx, id)
	if err != nil {
		return RunDetail{}, err
	}
	waits, err := s.db.OpenWaitsOfRuns(ctx, []uuid.UUID{id})
	if err != nil {
		return RunDetail{}, err
	}
	def, err := s.definitionOf(ctx, s.db, run.Workflow, run.Version)
	if err != nil {
		return RunDetail{}, err
	}
	detail := RunDetail{Run: run}
	for _, st := range steps {
		w := WaitingStep{Step: st.Key, Type: st.Type, Deadline: st.Deadline, Question: questionOf(def.Step(st.Name))}
		if w.Question != nil && s.secrets != nil {
			_, hash, err := s.db.GetStepAttempt(ctx, st.ID, st.Attempt)
			if err != nil {
				return RunDetail{}, err
			}
			ref := signing.CallbackRef{StepExecutionID: st.ID, Attempt: st.Attempt}
			if token, ok := s.secrets.StableCallbackTokenFor(ref, hash); ok {
				w.CallbackURL = s.publicURL + "/v1/callbacks/" + token
			}
		}
		for _, wt := range waits {
			if wt.StepExecutionID == st.ID {
				w.Events = append(w.Events, wt)
			}
		}
		detail.Waiting = append(detail.Waiting, w)
	}
	return detail, nil
}

// ListRuns returns up to limit runs matching f, newest first, after cursor.
func (s *API) ListRuns(ctx context.Context, f workflow.RunFilter, cursor *workflow.Cursor, limit int) ([]workflow.Run, error) {
	return s.db.ListRuns(ctx, f, cursor, limit)
}

// ListSteps returns a run's step executions with their attempts.
func (s *API) ListSteps(ctx context.Context, runID uuid.UUID, cursor *workflow.Cursor, limit int) ([]workflow.StepExecution, error) {
	if _, err := s.db.GetRun(ctx, runID); err != nil {
		return nil, err
	}
	return s.db.ListSteps(ctx, runID, cursor, limit)
}

// ListHistory returns a run's history events with ids above after.
func (s *API) ListHistory(ctx context.Context, runID uuid.UUID, after int64, limit int) ([]workflow.HistoryEvent, error) {
	if _, err := s.db.GetRun(ctx, runID); err != nil {
		return nil, err
	}
	return s.db.ListHistory(ctx, runID, after, limit)
}

// CancelRun cancels an unfinished run: its queued work is dropped, and a
// worker still holding a step of it finds its lease gone and records
// nothing. Cancelling a finished run is a conflict.
func (s *API) CancelRun(ctx context.Context, id uuid.UUID, reason string) (workflow.Run, error) {
	message := "the run was cancelled"
	if reason != "" {
		message = "the run was cancelled: " + reason
	}
	runErr, err := json.Marshal(workflow.RunError{Message: message, Code: "cancelled"})
	if err != nil {
		return workflow.Run{}, fmt.Errorf("encode run error: %w", err)
	}
	var run workflow.Run
	err = s.db.InTx(ctx, func(tx *postgres.Tx) error {
		run, err = s.cancelRunTx(ctx, tx, id, reason, runErr)
		return err
	})
	if err != nil {
		return workflow.Run{}, fmt.Errorf("cancel run %s: %w", id, err)
	}
	return run, nil
}

// cancelRunTx cancels an unfinished run in tx: its work items first, then
// the run, then its steps and waits — the order every transition takes its
// locks in.
func (s *core) cancelRunTx(ctx context.Context, tx *postgres.Tx, id uuid.UUID, reason string, runErr json.RawMessage) (workflow.Run, error) {
	if _, err := tx.LockRunWork(ctx, id); err != nil {
		return workflow.Run{}, err
	}
	current, err := tx.GetRun(ctx, id)
	if err != nil {
		return workflow.Run{}, err
	}
	if current.Status == workflow.RunCompensating && len(current.Error) > 0 {
		// The failure the run was compensating for stays in the error.
		var e workflow.RunError
		if err := json.Unmarshal(runErr, &e); err != nil {
			return workflow.Run{}, fmt.Errorf("decode run error: %w", err)
		}
		e.Message += " while it compensated for a failure"
		e.Details = current.Error
		if runErr, err = json.Marshal(e); err != nil {
			return workflow.Run{}, fmt.Errorf("encode run error: %w", err)
		}
	}
	run, ok, err := tx.FinishRun(ctx, id, workflow.RunCancelled, nil, runErr)
	if err != nil {
		return workflow.Run{}, err
	}
	if !ok {
		return workflow.Run{}, fault.New(fault.Conflict, "run %s is %s and cannot be cancelled", id, current.Status)
	}
	s.endRunSpan(ctx, tx, run)
	appendHistory(tx, id, workflow.EventRunCancelled, "", nil, map[string]any{"reason": reason})
	s.runEnded(ctx, tx, run, workflow.RunCancelled, runErr)
	return run, s.releaseInterruptedRun(ctx, tx, run, "cancelled")
}

// releaseInterruptedRun lets go of what a run ended from outside its steps
// (cancelled, or its timeout passed) still holds: its steps in flight end
// with stepStatus, its waits close, its queued work goes, its parent hears
// of its end and its children are cancelled.
func (s *core) releaseInterruptedRun(ctx context.Context, tx *postgres.Tx, run workflow.Run, stepStatus string) error {
	if err := tx.EndRunSteps(ctx, run.ID, stepStatus); err != nil {
		return err
	}
	if err := tx.CloseRunWaits(ctx, run.ID, "cancelled"); err != nil {
		return err
	}
	if err := tx.DeleteRunWork(ctx, run.ID); err != nil {
		return err
	}
	if err := tellParent(ctx, tx, run); err != nil {
		return err
	}
	return s.cancelChildren(ctx, tx, run.ID)
}
