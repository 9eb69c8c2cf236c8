package orchestrator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// RetryRun asks for a retry of a run that did not succeed.
type RetryRun struct {
	// Input and Context are JSON Merge Patches (RFC 7396) of the run's
	// input and context; nil: no edit.
	Input, Context json.RawMessage
	// FromStep names the top-level step to rerun from; "": the run goes on
	// from its first step that did not succeed.
	FromStep string
	Reason   string
	// By says who retried: [KeyID] of the caller's API key, or
	// [Anonymous].
	By string
}

// Anonymous is who a request is from when the API runs without keys.
const Anonymous = "anonymous"

// KeyID names an API key, given its SHA-256, in what a run's history and
// an operation record as who acted: the first 8 hex digits of the hash,
// which say which key without revealing it. The API and the dashboard
// both name their callers so.
func KeyID(sum [sha256.Size]byte) string {
	return "key:" + hex.EncodeToString(sum[:4])
}

// RetryRun resumes a failed, timed-out, cancelled or compensation_failed
// run: one transaction checks its status, applies the edits, makes the
// steps that run again new executions and queues their work.
func (s *API) RetryRun(ctx context.Context, id uuid.UUID, req RetryRun) (workflow.Run, error) {
	var run workflow.Run
	err := s.db.InTx(ctx, func(tx *postgres.Tx) (err error) {
		run, err = s.retryRunTx(ctx, tx, id, req)
		return err
	})
	if err != nil {
		return workflow.Run{}, fmt.Errorf("retry run %s: %w", id, err)
	}
	return run, nil
}

// retryRunTx retries a run in tx (see [API.RetryRun]). A run that cannot
// be retried is a conflict, and nothing changes.
func (s *core) retryRunTx(ctx context.Context, tx *postgres.Tx, id uuid.UUID, req RetryRun) (workflow.Run, error) {
	if _, err := tx.LockRunWork(ctx, id); err != nil {
		return workflow.Run{}, err
	}
	current, err := tx.GetRun(ctx, id)
	if err != nil {
		return workflow.Run{}, err
	}
	if err := s.checkRetryable(ctx, tx, current); err != nil {
		return workflow.Run{}, err
	}
	def, err := s.definitionOf(ctx, tx, current.Workflow, current.Version)
	if err != nil {
		return workflow.Run{}, err
	}
	input, runContext, err := s.editedRun(current, req)
	if err != nil {
		return workflow.Run{}, err
	}
	steps, err := tx.StepsForRetry(ctx, id)
	if err != nil {
		return workflow.Run{}, err
	}
	execs := make(map[string]engine.Execution, len(steps))
	for k, st := range steps {
		execs[k] = engine.Execution{Status: st.Status, Started: st.Started, Total: st.Total}
	}
	plan, err := engine.PlanRetry(def, execs, req.FromStep)
	if err != nil {
		return workflow.Run{}, fault.WithProblems(fault.Invalid, err.Error(), []fault.Problem{{Path: "/from_step", Message: err.Error()}})
	}
	run, ok, err := tx.RetryRun(ctx, id, current.Status, input, runContext, time.Duration(def.Timeout))
	if err != nil {
		return workflow.Run{}, err
	}
	if !ok {
		return workflow.Run{}, fault.New(fault.Conflict, "run %s cannot be retried: it changed meanwhile, or its history has no room left (DURABLE_MAX_HISTORY_EVENTS)", id)
	}
	if len(def.Concurrency) > 0 {
		// A retried run takes its places again, as a start does. Queueing
		// it instead would have admission begin it from its first step,
		// not from the retry's plan, so a key with no room refuses the
		// retry: the error rolls the transaction, and the queueing, back.
		limits, err := runKeys(ctx, def, run.Workflow, input)
		if err != nil {
			return workflow.Run{}, fault.WithProblems(fault.Invalid, "the workflow's concurrency key could not be evaluated", []fault.Problem{{Path: "/input", Message: err.Error()}})
		}
		entered, err := tx.EnterRun(ctx, id, current.Priority, limits)
		if err != nil {
			return workflow.Run{}, err
		}
		if !entered {
			return workflow.Run{}, fault.New(fault.Conflict, "run %s cannot be retried now: its workflow's concurrency limits have no room for it (retry it when runs of its key have finished)", id)
		}
	}
	changes := postgres.RetryChanges{Delete: plan.Delete, Lanes: plan.Lanes}
	for _, b := range plan.Blocks {
		changes.Blocks = append(changes.Blocks, postgres.ReopenedBlock{Key: b.Key, Open: b.Open})
	}
	if err := tx.ApplyRetry(ctx, id, changes); err != nil {
		return workflow.Run{}, err
	}
	for _, after := range plan.Advance {
		if err := tx.EnqueueWork(ctx, id, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: after}, 0); err != nil {
			return workflow.Run{}, err
		}
	}
	if def.Timeout > 0 {
		if err := tx.EnqueueWork(ctx, id, postgres.WorkTarget{Kind: postgres.WorkRunTimeout}, time.Duration(def.Timeout)); err != nil {
			return workflow.Run{}, err
		}
	}
	data := map[string]any{"by": req.By, "attempt": run.Attempt, "previous_status": current.Status}
	if req.Reason != "" {
		data["reason"] = req.Reason
	}
	if req.FromStep != "" {
		data["from_step"] = req.FromStep
	}
	if req.Input != nil {
		data["input"] = json.RawMessage(req.Input)
	}
	if req.Context != nil {
		data["context"] = json.RawMessage(req.Context)
	}
	appendHistory(tx, id, workflow.EventRunRetried, "", nil, data)
	return run, nil
}

// checkRetryable refuses, as a conflict, a run whose status cannot be
// retried, a run of an archived workflow, and a child run whose parent has
// finished (nothing would take the child's result).
func (s *core) checkRetryable(ctx context.Context, tx *postgres.Tx, run workflow.Run) error {
	if !engine.RunRetryable(run.Status) {
		why := ""
		if run.Status == workflow.RunCompensated {
			why = ": its compensations undid what its steps did; start a new run instead"
		}
		return fault.New(fault.Conflict, "run %s is %s and cannot be retried (only failed, timed_out, cancelled and compensation_failed runs can)%s", run.ID, run.Status, why)
	}
	var runErr workflow.RunError
	if len(run.Error) > 0 && json.Unmarshal(run.Error, &runErr) == nil && runErr.Code == "history_limit" {
		return fault.New(fault.Conflict, "run %s reached its history cap and cannot be retried: it would stop there again", run.ID)
	}
	latest, err := tx.GetLatestWorkflowVersion(ctx, run.Workflow)
	if err != nil {
		return err
	}
	if latest.ArchivedAt != nil {
		return fault.New(fault.Conflict, "workflow %q is archived: its runs cannot be retried until it is unarchived", run.Workflow)
	}
	if run.ParentRunID != nil {
		parent, err := tx.GetRun(ctx, *run.ParentRunID)
		if err != nil && !fault.Is(err, fault.NotFound) {
			return err
		}
		if err != nil || !parent.Status.Active() {
			return fault.New(fault.Conflict, "run %s is a child run whose parent has finished: retry the parent instead", run.ID)
		}
	}
	return nil
}

// editedRun applies a retry's merge patches to the run's input and
// context, refusing results that break the limits.
func (s *core) editedRun(run workflow.Run, req RetryRun) (input, runContext json.RawMessage, err error) {
	input, runContext = run.Input, run.Context
	if req.Input != nil {
		if input, err = mergePatch(run.Input, req.Input); err != nil {
			return nil, nil, fault.WithProblems(fault.Invalid, "the input patch is not valid JSON", []fault.Problem{{Path: "/input", Message: err.Error()}})
		}
		if bytes.Equal(input, []byte("null")) {
			input = json.RawMessage(`{}`)
		}
		if len(input) > s.limits.MaxInputBytes {
			return nil, nil, fault.WithProblems(fault.Invalid, "the edited input is too large", []fault.Problem{{
				Path: "/input", Message: fmt.Sprintf("the edited input is %d bytes; the limit is %d", len(input), s.limits.MaxInputBytes),
			}})
		}
	}
	if req.Context != nil {
		if runContext, err = mergePatch(run.Context, req.Context); err != nil {
			return nil, nil, fault.WithProblems(fault.Invalid, "the context patch is not valid JSON", []fault.Problem{{Path: "/context", Message: err.Error()}})
		}
		if len(runContext) == 0 || runContext[0] != '{' {
			return nil, nil, fault.WithProblems(fault.Invalid, "the edited context is not an object", []fault.Problem{{Path: "/context", Message: "a run's context is an object; the patch must leave one"}})
		}
		if len(runContext) > s.limits.MaxContextBytes {
			return nil, nil, fault.WithProblems(fault.Invalid, "the edited context is too large", []fault.Problem{{
				Path: "/context", Message: fmt.Sprintf("the edited context is %d bytes; the limit is %d", len(runContext), s.limits.MaxContextBytes),
			}})
		}
	}
	return input, runContext, nil
}

// mergePatch applies a JSON Merge Patch (RFC 7396) to target and returns
// the result as canonical JSON.
func mergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	var t, p any
	if err := decodeNumbers(target, &t); err != nil {
		return nil, err
	}
	if err := decodeNumbers(patch, &p); err != nil {
		return nil, err
	}
	merged, err := json.Marshal(mergeValue(t, p))
	if err != nil {
		return nil, err
	}
	return canonicalJSON(merged)
}

func decodeNumbers(raw json.RawMessage, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// mergeValue is RFC 7396's MergePatch: an object patch merges member by
// member (null removes), anything else replaces.
func mergeValue(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergeValue(t[k], v)
	}
	return t
}
