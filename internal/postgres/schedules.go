package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

func scheduleFromRow(r dbsqlc.Schedule) workflow.Schedule {
	s := workflow.Schedule{
		ID: r.ID, Name: r.Name, Workflow: r.WorkflowName, Cron: r.Cron, Timezone: r.Timezone, Input: r.Input,
		OverlapPolicy: r.OverlapPolicy, CatchupWindow: time.Duration(r.CatchupWindowMs) * time.Millisecond,
		Paused: r.Paused, NextFireAt: r.NextFireAt, BufferedFireTime: r.BufferedFireTime, Source: r.Source,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.WorkflowVersion != nil {
		s.Version = int(*r.WorkflowVersion)
	}
	return s
}

func versionParam(v int) *int32 {
	if v == 0 {
		return nil
	}
	n := int32(v)
	return &n
}

// InsertSchedule creates a schedule.
func (tx *Tx) InsertSchedule(ctx context.Context, s workflow.Schedule) (workflow.Schedule, error) {
	r, err := tx.q.ScheduleInsert(ctx, dbsqlc.ScheduleInsertParams{
		ID: s.ID, Name: s.Name, WorkflowName: s.Workflow, WorkflowVersion: versionParam(s.Version), Cron: s.Cron,
		Timezone: s.Timezone, Input: s.Input, OverlapPolicy: s.OverlapPolicy, CatchupWindowMs: s.CatchupWindow.Milliseconds(),
		Paused: s.Paused, NextFireAt: s.NextFireAt, Source: s.Source,
	})
	if err != nil {
		if fault.Is(translate(err), fault.Conflict) {
			return workflow.Schedule{}, fault.WithProblems(fault.Conflict, fmt.Sprintf("a schedule named %q exists", s.Name), []fault.Problem{{Path: "/name", Message: "is taken"}})
		}
		return workflow.Schedule{}, fmt.Errorf("insert schedule: %w", translate(err))
	}
	return scheduleFromRow(r), nil
}

// UpsertDefinitionSchedule creates or updates the schedule a workflow
// definition declares; false when a schedule of that name was made
// through the API.
func (tx *Tx) UpsertDefinitionSchedule(ctx context.Context, s workflow.Schedule) (workflow.Schedule, bool, error) {
	r, err := tx.q.ScheduleUpsertFromDefinition(ctx, dbsqlc.ScheduleUpsertFromDefinitionParams{
		ID: s.ID, Name: s.Name, WorkflowName: s.Workflow, Cron: s.Cron, Timezone: s.Timezone, Input: s.Input,
		OverlapPolicy: s.OverlapPolicy, CatchupWindowMs: s.CatchupWindow.Milliseconds(), NextFireAt: s.NextFireAt,
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.Schedule{}, false, nil
	}
	if err != nil {
		return workflow.Schedule{}, false, fmt.Errorf("upsert schedule: %w", translate(err))
	}
	return scheduleFromRow(r), true, nil
}

// GetSchedule returns a schedule.
func (q queries) GetSchedule(ctx context.Context, id uuid.UUID) (workflow.Schedule, error) {
	r, err := q.q.ScheduleGet(ctx, id)
	if err != nil {
		return workflow.Schedule{}, notFound(err, "schedule %s not found", id)
	}
	return scheduleFromRow(r), nil
}

// LockSchedule returns a schedule, locked until the transaction ends.
func (tx *Tx) LockSchedule(ctx context.Context, id uuid.UUID) (workflow.Schedule, error) {
	r, err := tx.q.ScheduleGetForUpdate(ctx, id)
	if err != nil {
		return workflow.Schedule{}, notFound(err, "schedule %s not found", id)
	}
	return scheduleFromRow(r), nil
}

// ListSchedules returns up to limit schedules by name, after the name after.
func (q queries) ListSchedules(ctx context.Context, after string, limit int) ([]workflow.Schedule, error) {
	params := dbsqlc.ScheduleListParams{Max: int32(limit)}
	if after != "" {
		params.After = &after
	}
	rows, err := q.q.ScheduleList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", translate(err))
	}
	out := make([]workflow.Schedule, len(rows))
	for i, r := range rows {
		out[i] = scheduleFromRow(r)
	}
	return out, nil
}

// UpdateSchedule stores a schedule's mutable fields.
func (tx *Tx) UpdateSchedule(ctx context.Context, s workflow.Schedule) (workflow.Schedule, error) {
	r, err := tx.q.ScheduleUpdate(ctx, dbsqlc.ScheduleUpdateParams{
		ID: s.ID, WorkflowName: s.Workflow, WorkflowVersion: versionParam(s.Version), Cron: s.Cron, Timezone: s.Timezone,
		Input: s.Input, OverlapPolicy: s.OverlapPolicy, CatchupWindowMs: s.CatchupWindow.Milliseconds(),
		Paused: s.Paused, NextFireAt: s.NextFireAt,
	})
	if err != nil {
		return workflow.Schedule{}, notFound(err, "schedule %s not found", s.ID)
	}
	return scheduleFromRow(r), nil
}

// DeleteSchedule deletes a schedule and its firings (runs stay).
func (tx *Tx) DeleteSchedule(ctx context.Context, id uuid.UUID) error {
	n, err := tx.q.ScheduleDelete(ctx, id)
	if err != nil {
		return fmt.Errorf("delete schedule: %w", translate(err))
	}
	if n == 0 {
		return fault.New(fault.NotFound, "schedule %s not found", id)
	}
	return nil
}

// ClaimDueSchedules locks up to max schedules with a firing due.
func (tx *Tx) ClaimDueSchedules(ctx context.Context, max int) ([]workflow.Schedule, error) {
	rows, err := tx.q.ScheduleClaimDue(ctx, int32(max))
	if err != nil {
		return nil, fmt.Errorf("claim due schedules: %w", translate(err))
	}
	out := make([]workflow.Schedule, len(rows))
	for i, r := range rows {
		out[i] = scheduleFromRow(r)
	}
	return out, nil
}

// AdvanceSchedule sets when a schedule fires next and the firing it holds
// back (nil for none).
func (tx *Tx) AdvanceSchedule(ctx context.Context, id uuid.UUID, next *time.Time, buffered *time.Time) error {
	if err := tx.q.ScheduleAdvance(ctx, dbsqlc.ScheduleAdvanceParams{ID: id, NextFireAt: next, BufferedFireTime: buffered}); err != nil {
		return fmt.Errorf("advance schedule: %w", translate(err))
	}
	return nil
}

// InsertScheduleFire claims a firing's (schedule, fire time) key with its
// outcome and returns it as stored; false when that firing happened already.
func (tx *Tx) InsertScheduleFire(ctx context.Context, scheduleID uuid.UUID, fireTime time.Time, outcome string, manual bool) (workflow.ScheduleFire, bool, error) {
	r, err := tx.q.ScheduleFireInsert(ctx, dbsqlc.ScheduleFireInsertParams{ScheduleID: scheduleID, FireTime: fireTime, Outcome: outcome, Manual: manual})
	if errors.Is(err, pgx.ErrNoRows) {
		return workflow.ScheduleFire{}, false, nil
	}
	if err != nil {
		return workflow.ScheduleFire{}, false, fmt.Errorf("record firing: %w", translate(err))
	}
	return workflow.ScheduleFire{FireTime: r.FireTime, RunID: r.RunID, Outcome: r.Outcome, Manual: r.Manual, FiredAt: r.FiredAt}, true, nil
}

// SetScheduleFireRun records the run a firing started.
func (tx *Tx) SetScheduleFireRun(ctx context.Context, scheduleID uuid.UUID, fireTime time.Time, runID uuid.UUID) error {
	if err := tx.q.ScheduleFireSetRun(ctx, dbsqlc.ScheduleFireSetRunParams{ScheduleID: scheduleID, FireTime: fireTime, RunID: &runID}); err != nil {
		return fmt.Errorf("record firing's run: %w", translate(err))
	}
	return nil
}

// SetScheduleFireOutcome changes the outcome of a firing: a firing held
// back that finally starts nothing.
func (tx *Tx) SetScheduleFireOutcome(ctx context.Context, scheduleID uuid.UUID, fireTime time.Time, outcome string) error {
	if err := tx.q.ScheduleFireSetOutcome(ctx, dbsqlc.ScheduleFireSetOutcomeParams{ScheduleID: scheduleID, FireTime: fireTime, Outcome: outcome}); err != nil {
		return fmt.Errorf("record firing's outcome: %w", translate(err))
	}
	return nil
}

// DeleteOldScheduleFires deletes up to max of the firings that are older
// than the newest keep of their schedule, and returns how many it deleted.
func (db *DB) DeleteOldScheduleFires(ctx context.Context, keep, max int) (int, error) {
	n, err := db.q.ScheduleFireDeleteOld(ctx, dbsqlc.ScheduleFireDeleteOldParams{Keep: int32(keep), Max: int32(max)})
	if err != nil {
		return 0, fmt.Errorf("delete old schedule firings: %w", translate(err))
	}
	return int(n), nil
}

// ScheduleFires returns a schedule's latest firings, newest first.
func (q queries) ScheduleFires(ctx context.Context, id uuid.UUID, limit int) ([]workflow.ScheduleFire, error) {
	rows, err := q.q.ScheduleFireList(ctx, dbsqlc.ScheduleFireListParams{ScheduleID: id, Max: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list firings: %w", translate(err))
	}
	out := make([]workflow.ScheduleFire, len(rows))
	for i, r := range rows {
		out[i] = workflow.ScheduleFire{FireTime: r.FireTime, RunID: r.RunID, Outcome: r.Outcome, Manual: r.Manual, FiredAt: r.FiredAt}
	}
	return out, nil
}

// ActiveScheduleRuns returns the ids of a schedule's runs that have not
// finished.
func (tx *Tx) ActiveScheduleRuns(ctx context.Context, scheduleID uuid.UUID) ([]uuid.UUID, error) {
	ids, err := tx.q.RunListActiveBySchedule(ctx, &scheduleID)
	if err != nil {
		return nil, fmt.Errorf("list active schedule runs: %w", translate(err))
	}
	return ids, nil
}

// DeleteDefinitionSchedule deletes the schedule a workflow's definition
// declared, if any.
func (tx *Tx) DeleteDefinitionSchedule(ctx context.Context, name string) error {
	if err := tx.q.ScheduleDeleteFromDefinition(ctx, name); err != nil {
		return fmt.Errorf("delete definition schedule: %w", translate(err))
	}
	return nil
}
