package orchestrator

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// Observer is told what the engine did once it is committed: the metrics
// implement it. Its methods must be quick; they run on the goroutine that
// committed.
type Observer interface {
	RunStarted(workflow string)
	RunFinished(workflow, status string)
	// StepEnded counts a step outcome: one of the Step* outcomes.
	StepEnded(workflow, step, outcome string)
	// AttemptTook is how long an attempt's call to its endpoint took.
	AttemptTook(workflow, step string, d time.Duration)
	CallbackAnswered(outcome string)
	EventPublished()
	ScheduleFired(workflow string)
	// FlowHeld counts a step's attempt held back by flow control, by
	// reason (workflow.BlockedConcurrency, workflow.BlockedThrottled).
	FlowHeld(workflow, step, reason string)
}

// Step outcomes an [Observer] is told of.
const (
	StepSucceeded = "succeeded" // a step execution succeeded
	StepFailed    = "failed"    // a step execution failed for good
	StepRetried   = "retried"   // an attempt failed and another follows
	StepAccepted  = "accepted"  // the endpoint answered 202: a callback finishes the step
	// A step's compensation succeeded, or failed for good.
	StepCompensated        = "compensated"
	StepCompensationFailed = "compensation_failed"
)

// WithObserver has o told of what the engine does.
func WithObserver(o Observer) Option {
	return func(s *core) { s.obs = o }
}

// observedOutcome is the outcome an observer is told of a step execution
// that ended with status: a wait that timed out failed.
func observedOutcome(status string) string {
	if status == "timed_out" {
		return StepFailed
	}
	return status
}

// unobserved is the [Observer] of a core given none.
type unobserved struct{}

func (unobserved) RunStarted(string)                         {}
func (unobserved) RunFinished(string, string)                {}
func (unobserved) StepEnded(string, string, string)          {}
func (unobserved) AttemptTook(string, string, time.Duration) {}
func (unobserved) CallbackAnswered(string)                   {}
func (unobserved) EventPublished()                           {}
func (unobserved) ScheduleFired(string)                      {}
func (unobserved) FlowHeld(string, string, string)           {}

// How a run was started, as its start is logged.
const (
	startedByAPI      = "api"
	startedBySchedule = "schedule"
	startedByParent   = "parent"
)

// runStarted logs and counts a run's creation once tx commits, however it
// was started.
func (s *core) runStarted(ctx context.Context, tx *postgres.Tx, run workflow.Run) {
	attrs := []any{"run_id", run.ID, "workflow", run.Workflow, "version", run.Version}
	switch {
	case run.ParentRunID != nil:
		attrs = append(attrs, "started_by", startedByParent, "parent_run_id", *run.ParentRunID)
	case run.ScheduleID != nil:
		attrs = append(attrs, "started_by", startedBySchedule, "schedule_id", *run.ScheduleID)
	default:
		attrs = append(attrs, "started_by", startedByAPI)
	}
	tx.AfterCommit(func() {
		s.obs.RunStarted(run.Workflow)
		s.logger.InfoContext(ctx, "run started", attrs...)
	})
}

// runEnded logs and counts a run's end — or its failure turning into
// compensation, which ends it later — once tx commits. The line names the
// failed step and the error's message.
func (s *core) runEnded(ctx context.Context, tx *postgres.Tx, run workflow.Run, status workflow.RunStatus, runErr json.RawMessage) {
	attrs := []any{"run_id", run.ID, "workflow", run.Workflow, "version", run.Version, "status", status}
	level := slog.LevelInfo
	if runErr != nil {
		var e workflow.RunError
		_ = json.Unmarshal(runErr, &e) // the engine's own error: a decoding failure only leaves fields out
		if e.Step != "" {
			attrs = append(attrs, "step", e.Step)
		}
		attrs = append(attrs, "error", e.Message)
	}
	msg := "run " + inWords(status)
	switch status {
	case workflow.RunFailed, workflow.RunTimedOut, workflow.RunCompensationFailed:
		level = slog.LevelWarn
	case workflow.RunCompensating:
		level, msg = slog.LevelWarn, "run failed; compensating its steps"
	}
	tx.AfterCommit(func() {
		if status.Terminal() {
			s.obs.RunFinished(run.Workflow, string(status))
		}
		s.logger.Log(ctx, level, msg, attrs...)
	})
}

// inWords is a run status as a log line or a reason says it: "timed out".
func inWords(status workflow.RunStatus) string {
	return strings.ReplaceAll(string(status), "_", " ")
}

// countStep counts a step outcome of run's step execution key once tx
// commits, for outcomes that end no call step's execution (attempts
// retried or accepted, blocks, compensations; see [core.stepEnded] for the
// rest); lanes are not steps and are not counted.
func (s *core) countStep(tx *postgres.Tx, run workflow.Run, key, outcome string) {
	if engine.IsLaneKey(key) {
		return
	}
	_, name := engine.SplitKey(key)
	tx.AfterCommit(func() { s.obs.StepEnded(run.Workflow, name, outcome) })
}
