package workflow

import (
	"time"

	"github.com/google/uuid"
)

// Operation kinds and states.
const (
	OperationCancel = "cancel"
	OperationRetry  = "retry"

	OperationPending   = "pending"
	OperationRunning   = "running"
	OperationSucceeded = "succeeded"
	OperationCancelled = "cancelled"
)

// MaxOperationFailures is how many failures an operation keeps.
const MaxOperationFailures = 100

// Operation is a bulk cancel or retry of the runs a filter matches,
// processed by workers in batches.
type Operation struct {
	ID         uuid.UUID
	Kind       string
	State      string
	Filter     RunFilter
	Reason     string
	CreatedBy  string
	Matched    int64
	Done       int64
	Skipped    int64
	Failed     int64
	Failures   []OperationFailure
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt *time.Time
	// Cursor is the last run processed, nil before the first batch.
	Cursor *Cursor
}

// OperationFailure is a run whose cancel or retry failed, and why.
type OperationFailure struct {
	RunID   uuid.UUID `json:"run_id"`
	Message string    `json:"message"`
}

// Empty reports whether the filter sets no field: it would match every run.
func (f RunFilter) Empty() bool {
	return f.Workflow == "" && len(f.Statuses) == 0 && f.Parent == nil && f.CreatedAfter == nil && f.CreatedBefore == nil
}
