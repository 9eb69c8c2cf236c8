package workflow

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// RunStatus is the state of a run. See [RunStatus.Terminal].
type RunStatus string

// The states a run moves through.
const (
	RunPending RunStatus = "pending"
	// RunQueued waits for room under its workflow's concurrency limits;
	// it has not begun.
	RunQueued             RunStatus = "queued"
	RunRunning            RunStatus = "running"
	RunWaiting            RunStatus = "waiting"
	RunSucceeded          RunStatus = "succeeded"
	RunFailed             RunStatus = "failed"
	RunCancelled          RunStatus = "cancelled"
	RunTimedOut           RunStatus = "timed_out"
	RunCompensating       RunStatus = "compensating"
	RunCompensated        RunStatus = "compensated"
	RunCompensationFailed RunStatus = "compensation_failed"
)

// RunStatuses lists every run state, in the order a run usually meets them.
var RunStatuses = []RunStatus{
	RunQueued, RunPending, RunRunning, RunWaiting, RunSucceeded, RunFailed, RunCancelled,
	RunTimedOut, RunCompensating, RunCompensated, RunCompensationFailed,
}

// Valid reports whether s is one of [RunStatuses].
func (s RunStatus) Valid() bool {
	for _, v := range RunStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Active reports whether a run in state s is on its way: its steps may
// start, run and wait.
func (s RunStatus) Active() bool {
	return s == RunPending || s == RunRunning || s == RunWaiting
}

// Terminal reports whether a run in state s has finished for good (until a
// user retries it): nothing will move it again on its own.
func (s RunStatus) Terminal() bool {
	switch s {
	case RunSucceeded, RunFailed, RunCancelled, RunTimedOut, RunCompensated, RunCompensationFailed:
		return true
	}
	return false
}

// WorkflowVersion is one immutable version of a workflow definition.
type WorkflowVersion struct {
	Name       string
	Version    int
	Definition json.RawMessage
	Hash       []byte
	CreatedAt  time.Time
	// ArchivedAt is when the version's workflow (all its versions) was
	// archived, nil while it is not; read with the version where a run
	// start needs it.
	ArchivedAt *time.Time
}

// WorkflowSummary describes a workflow by name, without its definition.
type WorkflowSummary struct {
	Name          string
	LatestVersion int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	ArchivedAt    *time.Time // nil while the workflow is not archived
}

// Run is one execution of a pinned workflow version.
type Run struct {
	ID                    uuid.UUID
	Workflow              string
	Version               int
	Status                RunStatus
	Input                 json.RawMessage
	Context               json.RawMessage
	Output                json.RawMessage
	Error                 json.RawMessage
	Attempt               int
	ParentRunID           *uuid.UUID
	Depth                 int // call_workflow steps above the run
	ScheduleID            *uuid.UUID
	IdempotencyKey        string
	Deadline              *time.Time
	CreatedAt             time.Time
	UpdatedAt             time.Time
	StartedAt             *time.Time
	FinishedAt            *time.Time
	RequestHash           []byte
	ParentStepExecutionID *uuid.UUID
	Trace                 TraceContext
	// HistoryCap is the most events the run's history holds (those of
	// steps inside foreach items not counted).
	HistoryCap int
	// Priority orders the run's due work against other runs' (0–100).
	Priority int
	// Blocked says why the run is not moving, nil while nothing of flow
	// control holds it up.
	Blocked *Blocked
}

// DefaultPriority is a run's priority when its start gives none.
const DefaultPriority = 50

// The reasons flow control holds a run up.
const (
	BlockedQueued      = "queued"      // the run waits for room under its workflow's concurrency limit
	BlockedConcurrency = "concurrency" // a step waits for room under its concurrency limit
	BlockedThrottled   = "throttled"   // a step waits for its rate limit's next token
)

// Blocked is why a run is not moving: its reason, the key it waits
// behind, since when, and (throttled) until when at least.
type Blocked struct {
	Reason string     `json:"reason"`
	Key    string     `json:"key"`
	Step   string     `json:"step,omitempty"`
	Since  time.Time  `json:"since"`
	Until  *time.Time `json:"until,omitempty"`
}

// TraceContext is where a run's spans belong in a distributed trace, chosen
// when the run is created. Its strings are W3C trace-context values; all
// are empty for a run created before runs had one.
type TraceContext struct {
	// Traceparent is the run's own span: the trace id, the span id of the
	// run, and the trace flags.
	Traceparent string
	// ParentSpanID is the span the run's span is a child of (16 hex
	// digits), empty when the run began its trace.
	ParentSpanID string
	Tracestate   string
}

// RunError is the error a failed, cancelled or timed-out run reports.
type RunError struct {
	Message string          `json:"message"`
	Code    string          `json:"code,omitempty"`
	Step    string          `json:"step,omitempty"`
	Details json.RawMessage `json:"details,omitempty"`
}

// StepExecution is one logical execution of a step within a run, with every
// attempt made at it.
type StepExecution struct {
	ID         uuid.UUID
	RunID      uuid.UUID
	ParentID   *uuid.UUID
	Key        string
	Name       string
	Type       string
	Status     string
	Attempt    int
	Abandoned  int // attempts the engine cut short; they do not count against the retry policy
	WebhookID  string
	Input      json.RawMessage
	Output     json.RawMessage
	Error      json.RawMessage
	Deadline   *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	Attempts   []StepAttempt
}

// StepAttempt is one attempt at a step execution: one HTTP request, or one
// wait.
type StepAttempt struct {
	Attempt    int
	Status     string
	WorkerID   string
	HTTPStatus *int
	Error      json.RawMessage
	Logs       json.RawMessage
	StartedAt  time.Time
	FinishedAt *time.Time
}

// HistoryEvent is one entry of a run's append-only history.
type HistoryEvent struct {
	ID      int64
	RunID   uuid.UUID
	Type    string
	StepKey string
	Attempt *int
	Data    json.RawMessage
	Time    time.Time
}

// History event types, in the order a run usually meets them.
const (
	EventRunCreated         = "run_created"
	EventRunQueued          = "run_queued"   // a concurrency limit of its workflow holds the run
	EventRunAdmitted        = "run_admitted" // a queued run got its places and begins
	EventRunStarted         = "run_started"
	EventStepStarted        = "step_started"         // an attempt began
	EventStepAccepted       = "step_accepted"        // the endpoint answered 202
	EventStepWaiting        = "step_waiting"         // a sleep or wait began
	EventStepHeartbeat      = "step_heartbeat"       // a callback extended the deadline
	EventStepAbandoned      = "step_abandoned"       // the attempt's worker was lost
	EventStepTimedOut       = "step_timed_out"       // a parked step's deadline passed
	EventStepRetryScheduled = "step_retry_scheduled" // the attempt failed; another follows
	EventLanesOpened        = "lanes_opened"         // a parallel or foreach step opened its lanes
	EventStepSucceeded      = "step_succeeded"
	EventStepFailed         = "step_failed"
	EventRunSucceeded       = "run_succeeded"
	EventRunFailed          = "run_failed"
	EventRunCancelled       = "run_cancelled"
	EventRunRetried         = "run_retried"
	EventRunTimedOut        = "run_timed_out"

	EventRunCompensating            = "run_compensating"             // the run failed; compensations begin
	EventStepCompensated            = "step_compensated"             // a step's compensation succeeded
	EventCompensationRetryScheduled = "compensation_retry_scheduled" // a compensation attempt failed; another follows
	EventStepCompensationFailed     = "step_compensation_failed"     // a step's compensation failed for good
	EventRunCompensated             = "run_compensated"
	EventRunCompensationFailed      = "run_compensation_failed"
)

// EndsRun reports whether a history event of type t ends its run. A run's
// history cap keeps room for it: the event that ends a run is always
// written.
func EndsRun(t string) bool {
	switch t {
	case EventRunSucceeded, EventRunFailed, EventRunCancelled, EventRunTimedOut, EventRunCompensated, EventRunCompensationFailed:
		return true
	}
	return false
}

// Wait is one condition a waiting step waits for: an event by name and key.
type Wait struct {
	ID              uuid.UUID
	RunID           uuid.UUID
	StepExecutionID uuid.UUID
	Index           int // the condition's position in the step's any/all list
	EventName       string
	EventKey        string
	LookbackFrom    time.Time // events received since then count
	Status          string    // open, resolved, timed_out, cancelled
	Resolution      json.RawMessage
	Deadline        *time.Time
}

// Event is something that happened elsewhere, published to resume the runs
// waiting for it.
type Event struct {
	ID         uuid.UUID
	DedupID    string
	Name       string
	Key        string
	Payload    json.RawMessage
	ReceivedAt time.Time
}

// Overlap policies: what a schedule's firing does while an earlier run it
// started is still active.
const (
	OverlapAllow       = "allow"        // start another run
	OverlapSkip        = "skip"         // skip the firing
	OverlapBufferOne   = "buffer_one"   // start it when the active run ends; at most one held back
	OverlapCancelOther = "cancel_other" // cancel the active runs, then start
)

// Schedule starts runs of a workflow on a calendar.
type Schedule struct {
	ID               uuid.UUID
	Name             string
	Workflow         string
	Version          int // 0: the latest version at each firing
	Cron             string
	Timezone         string
	Input            json.RawMessage
	OverlapPolicy    string
	CatchupWindow    time.Duration
	Paused           bool
	NextFireAt       *time.Time
	BufferedFireTime *time.Time
	Source           string // "api" or "definition"
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// ScheduleFire is one firing of a schedule.
type ScheduleFire struct {
	FireTime time.Time
	RunID    *uuid.UUID
	Outcome  string
	Manual   bool
	FiredAt  time.Time
}
