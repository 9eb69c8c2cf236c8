package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/cron"
	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

const (
	// maxCatchUp bounds the firings one schedule makes in one transaction;
	// a longer catch-up goes on in the next.
	maxCatchUp = 100
	// scheduleBatch bounds the schedules one worker fires in one transaction.
	scheduleBatch = 16
)

// ScheduleSpec is what a schedule is made of, as a client sends it.
type ScheduleSpec struct {
	Name          string
	Workflow      string
	Version       int // 0: the latest version at each firing
	Cron          string
	Timezone      string
	Input         json.RawMessage
	OverlapPolicy string
	CatchupWindow time.Duration
	Paused        bool
}

// parseSchedule validates a schedule's cron expression and time zone, with
// every problem at its path.
func parseSchedule(expr, tz string) (*cron.Schedule, error) {
	sched, err := cron.Parse(expr, tz)
	if err != nil {
		return nil, fault.WithProblems(fault.Invalid, "the schedule is invalid", []fault.Problem{{Path: cronErrorPath(err), Message: err.Error()}})
	}
	return sched, nil
}

// cronErrorPath names the field a cron.Parse error is about.
func cronErrorPath(err error) string {
	if strings.Contains(err.Error(), "time zone") {
		return "/timezone"
	}
	return "/cron"
}

// validateSchedule checks a schedule spec, filling in defaults, and
// returns its parsed calendar; every problem is reported at once.
func (s *core) validateSchedule(ctx context.Context, tx *postgres.Tx, spec *ScheduleSpec) (*cron.Schedule, error) {
	if spec.Timezone == "" {
		spec.Timezone = "UTC"
	}
	if spec.OverlapPolicy == "" {
		spec.OverlapPolicy = workflow.OverlapAllow
	}
	if len(spec.Input) == 0 || string(spec.Input) == "null" {
		spec.Input = json.RawMessage(`{}`)
	}
	if len(spec.Input) > s.limits.MaxInputBytes {
		return nil, fault.WithProblems(fault.TooLarge, "the schedule's input is too large", []fault.Problem{{Path: "/input", Message: fmt.Sprintf("the limit is %d bytes", s.limits.MaxInputBytes)}})
	}
	var problems []fault.Problem
	sched, err := cron.Parse(spec.Cron, spec.Timezone)
	if err != nil {
		problems = append(problems, fault.Problem{Path: cronErrorPath(err), Message: err.Error()})
		if cronErrorPath(err) == "/timezone" {
			// The zone is checked first: check the expression too.
			if _, cerr := cron.Parse(spec.Cron, "UTC"); cerr != nil {
				problems = append(problems, fault.Problem{Path: "/cron", Message: cerr.Error()})
			}
		}
	}
	if _, err := tx.GetWorkflow(ctx, spec.Workflow); fault.Is(err, fault.NotFound) {
		problems = append(problems, fault.Problem{Path: "/workflow", Message: err.Error()})
	} else if err != nil {
		return nil, err
	} else if spec.Version != 0 {
		if _, err := tx.GetWorkflowVersion(ctx, spec.Workflow, spec.Version); fault.Is(err, fault.NotFound) {
			problems = append(problems, fault.Problem{Path: "/version", Message: err.Error()})
		} else if err != nil {
			return nil, err
		}
	}
	if len(problems) > 0 {
		return nil, fault.WithProblems(fault.Invalid, "the schedule is invalid", problems)
	}
	return sched, nil
}

// CreateSchedule creates a schedule; its first firing is the first fire
// time after now.
func (s *API) CreateSchedule(ctx context.Context, spec ScheduleSpec) (workflow.Schedule, error) {
	var out workflow.Schedule
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		sched, err := s.validateSchedule(ctx, tx, &spec)
		if err != nil {
			return err
		}
		next := sched.Next(time.Now())
		out, err = tx.InsertSchedule(ctx, workflow.Schedule{
			ID: uuid.Must(uuid.NewV7()), Name: spec.Name, Workflow: spec.Workflow, Version: spec.Version,
			Cron: spec.Cron, Timezone: spec.Timezone, Input: spec.Input, OverlapPolicy: spec.OverlapPolicy,
			CatchupWindow: spec.CatchupWindow, Paused: spec.Paused, NextFireAt: &next, Source: "api",
		})
		return err
	})
	return out, err
}

// upsertDefinitionSchedule creates or updates the schedule a workflow
// definition declares, named after the workflow.
func (s *core) upsertDefinitionSchedule(ctx context.Context, tx *postgres.Tx, def *workflow.Definition) error {
	ds := def.Schedule
	sched, err := parseSchedule(ds.Cron, ds.Timezone)
	if err != nil {
		return err
	}
	input := ds.Input
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	next := sched.Next(time.Now())
	_, ok, err := tx.UpsertDefinitionSchedule(ctx, workflow.Schedule{
		ID: uuid.Must(uuid.NewV7()), Name: def.Name, Workflow: def.Name, Cron: ds.Cron, Timezone: sched.Location().String(),
		Input: input, OverlapPolicy: ds.OverlapPolicy, CatchupWindow: time.Duration(ds.CatchupWindow), NextFireAt: &next,
	})
	if err != nil {
		return err
	}
	if !ok {
		return fault.WithProblems(fault.Conflict, fmt.Sprintf("a schedule named %q made through the API exists", def.Name),
			[]fault.Problem{{Path: "/schedule", Message: "rename or delete the schedule made through the API first"}})
	}
	return nil
}

// SchedulePatch changes some fields of a schedule; nil fields stay.
type SchedulePatch struct {
	Workflow      *string
	Version       *int
	Cron          *string
	Timezone      *string
	Input         json.RawMessage
	OverlapPolicy *string
	CatchupWindow *time.Duration
}

// UpdateSchedule changes a schedule. A changed calendar takes effect from
// now: the next firing is recomputed.
func (s *API) UpdateSchedule(ctx context.Context, id uuid.UUID, p SchedulePatch) (workflow.Schedule, error) {
	var out workflow.Schedule
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		cur, err := tx.LockSchedule(ctx, id)
		if err != nil {
			return err
		}
		spec := ScheduleSpec{
			Name: cur.Name, Workflow: cur.Workflow, Version: cur.Version, Cron: cur.Cron, Timezone: cur.Timezone,
			Input: cur.Input, OverlapPolicy: cur.OverlapPolicy, CatchupWindow: cur.CatchupWindow, Paused: cur.Paused,
		}
		if p.Workflow != nil {
			spec.Workflow = *p.Workflow
		}
		if p.Version != nil {
			spec.Version = *p.Version
		}
		if p.Cron != nil {
			spec.Cron = *p.Cron
		}
		if p.Timezone != nil {
			spec.Timezone = *p.Timezone
		}
		if p.Input != nil {
			spec.Input = p.Input
		}
		if p.OverlapPolicy != nil {
			spec.OverlapPolicy = *p.OverlapPolicy
		}
		if p.CatchupWindow != nil {
			spec.CatchupWindow = *p.CatchupWindow
		}
		sched, err := s.validateSchedule(ctx, tx, &spec)
		if err != nil {
			return err
		}
		next := cur.NextFireAt
		if p.Cron != nil || p.Timezone != nil {
			n := sched.Next(time.Now())
			next = &n
		}
		out, err = tx.UpdateSchedule(ctx, workflow.Schedule{
			ID: id, Workflow: spec.Workflow, Version: spec.Version, Cron: spec.Cron, Timezone: spec.Timezone,
			Input: spec.Input, OverlapPolicy: spec.OverlapPolicy, CatchupWindow: spec.CatchupWindow,
			Paused: cur.Paused, NextFireAt: next,
		})
		return err
	})
	return out, err
}

// SetSchedulePaused pauses or resumes a schedule. A resumed schedule fires
// next at its first fire time after now: firings missed while paused are
// not caught up.
func (s *API) SetSchedulePaused(ctx context.Context, id uuid.UUID, paused bool) (workflow.Schedule, error) {
	var out workflow.Schedule
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		cur, err := tx.LockSchedule(ctx, id)
		if err != nil {
			return err
		}
		next := cur.NextFireAt
		if !paused && cur.Paused {
			sched, err := parseSchedule(cur.Cron, cur.Timezone)
			if err != nil {
				return err
			}
			n := sched.Next(time.Now())
			next = &n
		}
		cur.Paused, cur.NextFireAt = paused, next
		out, err = tx.UpdateSchedule(ctx, cur)
		return err
	})
	return out, err
}

// DeleteSchedule deletes a schedule and its firing history; the runs it
// started stay.
func (s *API) DeleteSchedule(ctx context.Context, id uuid.UUID) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error { return tx.DeleteSchedule(ctx, id) })
}

// ScheduleDetail is a schedule with its latest firings and its next fire
// times.
type ScheduleDetail struct {
	workflow.Schedule
	Fires []workflow.ScheduleFire
	Next  []time.Time
}

// GetSchedule returns a schedule with its last firings and next fire times.
func (s *API) GetSchedule(ctx context.Context, id uuid.UUID) (ScheduleDetail, error) {
	sch, err := s.db.GetSchedule(ctx, id)
	if err != nil {
		return ScheduleDetail{}, err
	}
	fires, err := s.db.ScheduleFires(ctx, id, 20)
	if err != nil {
		return ScheduleDetail{}, err
	}
	d := ScheduleDetail{Schedule: sch, Fires: fires}
	if sched, err := cron.Parse(sch.Cron, sch.Timezone); err == nil && !sch.Paused {
		from := time.Now()
		if sch.NextFireAt != nil && sch.NextFireAt.Before(from) {
			from = sch.NextFireAt.Add(-time.Nanosecond)
		}
		d.Next = sched.Preview(from, 5)
	}
	return d, nil
}

// ListSchedules returns up to limit schedules by name, after a name.
func (s *API) ListSchedules(ctx context.Context, after string, limit int) ([]workflow.Schedule, error) {
	return s.db.ListSchedules(ctx, after, limit)
}

// PreviewSchedule returns the next count fire times of a cron expression in
// a time zone after from.
func (s *API) PreviewSchedule(expr, tz string, from time.Time, count int) ([]time.Time, error) {
	sched, err := parseSchedule(expr, tz)
	var fe *fault.Error
	if errors.As(err, &fe) {
		// The expression and zone came as query parameters.
		for i := range fe.Problems {
			fe.Problems[i].Path = "query:" + strings.TrimPrefix(fe.Problems[i].Path, "/")
		}
	}
	if err != nil {
		return nil, err
	}
	return sched.Preview(from, count), nil
}

// TriggerSchedule fires a schedule now, whatever its calendar, pause or
// overlap policy: a manual firing always starts a run.
func (s *API) TriggerSchedule(ctx context.Context, id uuid.UUID) (workflow.ScheduleFire, error) {
	var fire workflow.ScheduleFire
	err := s.db.InTx(ctx, func(tx *postgres.Tx) error {
		sch, err := tx.LockSchedule(ctx, id)
		if err != nil {
			return err
		}
		// PostgreSQL keeps microseconds: the answer shows the key as stored.
		now := time.Now().UTC().Truncate(time.Microsecond)
		fire, err = s.fire(ctx, tx, sch, now, true)
		return err
	})
	return fire, err
}

// fireDueSchedules makes the firings that are due, for up to
// scheduleBatch schedules no other worker holds, in one transaction. Each
// firing is recorded under its unique (schedule, fire time) key in the
// transaction that starts its run, and the schedule's row stays locked
// until then: any number of workers fire each firing exactly once. It
// returns how many runs it started.
func (s *core) fireDueSchedules(ctx context.Context) (int, error) {
	started := 0
	err := s.claimDB().InTx(ctx, func(tx *postgres.Tx) error {
		started = 0
		due, err := tx.ClaimDueSchedules(ctx, scheduleBatch)
		if err != nil {
			return err
		}
		for _, sch := range due {
			err := tx.Savepoint(ctx, func(sp *postgres.Tx) error {
				n, err := s.fireSchedule(ctx, sp, sch)
				started += n
				return err
			})
			if err != nil && ctx.Err() == nil {
				s.logger.ErrorContext(ctx, "fire schedule", "schedule", sch.Name, "error", err)
			}
		}
		return nil
	})
	return started, err
}

// fireSchedule makes a locked schedule's due firings: a firing held back by
// buffer_one once the active run ended, then those whose time came, within
// the catch-up window (older ones, missed while no worker ran, are
// skipped), and moves the schedule on to its next fire time.
func (s *core) fireSchedule(ctx context.Context, tx *postgres.Tx, sch workflow.Schedule) (int, error) {
	sched, err := cron.Parse(sch.Cron, sch.Timezone)
	if err != nil {
		return 0, fmt.Errorf("schedule %s: %w", sch.Name, err)
	}
	started := 0
	buffered := sch.BufferedFireTime
	if buffered != nil {
		active, err := tx.ActiveScheduleRuns(ctx, sch.ID)
		if err != nil {
			return 0, err
		}
		archived, err := workflowArchived(ctx, tx, sch.Workflow)
		if err != nil {
			return 0, err
		}
		switch {
		case len(active) == 0 && archived:
			// The held-back firing starts nothing either.
			if err := tx.SetScheduleFireOutcome(ctx, sch.ID, *buffered, "archived"); err != nil {
				return 0, err
			}
			buffered = nil
		case len(active) == 0:
			run, err := s.startScheduledRun(ctx, tx, sch)
			if err != nil {
				return 0, err
			}
			if err := tx.SetScheduleFireRun(ctx, sch.ID, *buffered, run.ID); err != nil {
				return 0, err
			}
			started++
			buffered = nil
		}
	}
	now := time.Now()
	next := sch.NextFireAt
	if next != nil && !next.After(now) {
		times := append([]time.Time{*next}, sched.Between(*next, now, maxCatchUp)...)
		missed := 0
		for i, t := range times {
			// Firings missed while no worker ran are made within the
			// catch-up window; without one, only the latest due firing is,
			// if at most a minute late (a worker's ordinary lag).
			late := now.Sub(t)
			if (sch.CatchupWindow == 0 && (i < len(times)-1 || late > time.Minute)) || (sch.CatchupWindow > 0 && late > sch.CatchupWindow) {
				missed++
				continue
			}
			sch.BufferedFireTime = buffered
			fire, err := s.fire(ctx, tx, sch, t.UTC(), false)
			if err != nil {
				return started, err
			}
			if fire.Outcome == "buffered" {
				buffered = &fire.FireTime
			}
			if fire.RunID != nil {
				started++
			}
		}
		if missed > 0 {
			s.logger.WarnContext(ctx, "schedule firings missed beyond the catch-up window", "schedule", sch.Name, "missed", missed)
		}
		n := sched.Next(times[len(times)-1])
		next = &n
	}
	return started, tx.AdvanceSchedule(ctx, sch.ID, next, buffered)
}

// fire makes one firing of a locked schedule at fireTime, under its unique
// key, applying the overlap policy (manual firings always start a run). A
// firing of an archived workflow starts nothing: its outcome is archived,
// and a manual one is refused.
func (s *core) fire(ctx context.Context, tx *postgres.Tx, sch workflow.Schedule, fireTime time.Time, manual bool) (workflow.ScheduleFire, error) {
	fire := workflow.ScheduleFire{FireTime: fireTime, Outcome: "started", Manual: manual}
	archived, err := workflowArchived(ctx, tx, sch.Workflow)
	if err != nil {
		return fire, err
	}
	if archived && manual {
		return fire, archivedError(sch.Workflow)
	}
	var active []uuid.UUID
	if archived {
		fire.Outcome = "archived"
	} else if !manual && sch.OverlapPolicy != workflow.OverlapAllow {
		var err error
		if active, err = tx.ActiveScheduleRuns(ctx, sch.ID); err != nil {
			return fire, err
		}
	}
	if len(active) > 0 {
		switch sch.OverlapPolicy {
		case workflow.OverlapSkip:
			fire.Outcome = "skipped"
		case workflow.OverlapBufferOne:
			// At most one firing waits: a later one while it waits is skipped.
			fire.Outcome = "buffered"
			if sch.BufferedFireTime != nil {
				fire.Outcome = "skipped"
			}
		case workflow.OverlapCancelOther:
			fire.Outcome = "cancelled_other"
		}
	}
	stored, ok, err := tx.InsertScheduleFire(ctx, sch.ID, fireTime, fire.Outcome, manual)
	if err != nil {
		return fire, err
	}
	if !ok {
		if manual {
			return fire, fault.New(fault.Conflict, "schedule %s fired at %s already", sch.Name, fireTime.Format(time.RFC3339Nano))
		}
		// Made already (under the key): nothing to do, and the schedule
		// moves on.
		fire.Outcome = ""
		return fire, nil
	}
	fire.FiredAt = stored.FiredAt
	if fire.Outcome == "skipped" || fire.Outcome == "buffered" || fire.Outcome == "archived" {
		return fire, nil
	}
	if fire.Outcome == "cancelled_other" {
		runErr := engine.RunError("a newer firing of its schedule replaced it", "cancelled", "", nil)
		for _, id := range active {
			if _, err := s.cancelRunTx(ctx, tx, id, "replaced by a newer firing of schedule "+sch.Name, runErr); err != nil && !fault.Is(err, fault.Conflict) {
				return fire, err
			}
		}
	}
	run, err := s.startScheduledRun(ctx, tx, sch)
	if err != nil {
		return fire, err
	}
	fire.RunID = &run.ID
	tx.AfterCommit(func() { s.obs.ScheduleFired(sch.Workflow) })
	return fire, tx.SetScheduleFireRun(ctx, sch.ID, fireTime, run.ID)
}

// workflowArchived reports whether the workflow called name is archived.
func workflowArchived(ctx context.Context, tx *postgres.Tx, name string) (bool, error) {
	wf, err := tx.GetWorkflow(ctx, name)
	if err != nil {
		return false, err
	}
	return wf.ArchivedAt != nil, nil
}

// startScheduledRun starts a run of a schedule's workflow with its input.
func (s *core) startScheduledRun(ctx context.Context, tx *postgres.Tx, sch workflow.Schedule) (workflow.Run, error) {
	input, err := canonicalJSON(sch.Input)
	if err != nil {
		return workflow.Run{}, fmt.Errorf("schedule %s input: %w", sch.Name, err)
	}
	id := sch.ID
	run, _, err := s.startRunTx(ctx, tx, sch.Workflow, sch.Version, newRunInput{input: input, scheduleID: &id})
	return run, err
}
