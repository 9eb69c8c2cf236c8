package workflow

import (
	"time"

	"github.com/google/uuid"
)

// RunFilter selects runs for a list of runs. Zero fields match any run.
type RunFilter struct {
	Workflow      string
	Statuses      []RunStatus
	Parent        *uuid.UUID
	CreatedAfter  *time.Time // inclusive
	CreatedBefore *time.Time // exclusive
}

// Cursor is the position after which a list of runs or of a run's steps
// continues: the creation time and id of the last item of the previous
// page.
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}
