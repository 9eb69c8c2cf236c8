package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/durablehq/durable/client"
)

// parseID reads the id of what ("a run", "an operation") from an
// argument: one that is not a UUID is a usage error.
func parseID(arg, what string) (uuid.UUID, error) {
	id, err := uuid.Parse(arg)
	if err != nil {
		return uuid.Nil, usageErrorf("%q is not %s id (a UUID)", arg, what)
	}
	return id, nil
}

func (a *app) runsCommand() *cobra.Command {
	return group("runs", "Start, list, inspect, follow, cancel, retry and delete runs",
		a.runsListCommand(),
		a.runsShowCommand(),
		a.runsStepsCommand(),
		a.runsHistoryCommand(),
		a.runsGraphCommand(),
		a.runsStartCommand(),
		a.runsCancelCommand(),
		a.runsRetryCommand(),
		a.runsBulkCommand(),
		a.runsWatchCommand(),
		a.runsDeleteCommand(),
	)
}

// runStatuses are the states a run can be in.
var runStatuses = []client.RunStatus{
	client.RunStatusPending, client.RunStatusRunning, client.RunStatusWaiting,
	client.RunStatusSucceeded, client.RunStatusFailed, client.RunStatusCancelled,
	client.RunStatusTimedOut, client.RunStatusCompensating, client.RunStatusCompensated,
	client.RunStatusCompensationFailed,
}

// runFilter is the filter of the run list, which bulk operations share.
type runFilter struct {
	workflow string
	statuses []string
	since    string
	before   string
	parent   string
}

func (f *runFilter) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.workflow, "workflow", "", "only runs of this workflow")
	cmd.Flags().StringSliceVar(&f.statuses, "status", nil, "only runs in these states (comma-separated: "+joinStatuses()+")")
	cmd.Flags().StringVar(&f.since, "since", "", "only runs created since then: a duration back from now (1h, 30m) or an RFC 3339 time")
	cmd.Flags().StringVar(&f.before, "before", "", "only runs created before then: a duration back from now or an RFC 3339 time")
	cmd.Flags().StringVar(&f.parent, "parent", "", "only the child runs of this run")
}

func joinStatuses() string {
	s := make([]string, len(runStatuses))
	for i, st := range runStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// parsed is the filter as the API takes it; empty strings and nil slices
// are no filter.
type parsedFilter struct {
	workflow      *string
	statuses      *[]client.RunStatus
	createdAfter  *time.Time
	createdBefore *time.Time
	parent        *uuid.UUID
}

func (f *runFilter) parse(now time.Time) (parsedFilter, error) {
	var p parsedFilter
	if f.workflow != "" {
		p.workflow = &f.workflow
	}
	if len(f.statuses) > 0 {
		sts := make([]client.RunStatus, 0, len(f.statuses))
		for _, s := range f.statuses {
			st := client.RunStatus(strings.TrimSpace(s))
			if !st.Valid() {
				return p, usageErrorf("--status: %q is not a run state (%s)", s, joinStatuses())
			}
			sts = append(sts, st)
		}
		p.statuses = &sts
	}
	var err error
	if p.createdAfter, err = instant("--since", f.since, now); err != nil {
		return p, err
	}
	if p.createdBefore, err = instant("--before", f.before, now); err != nil {
		return p, err
	}
	if f.parent != "" {
		id, err := uuid.Parse(f.parent)
		if err != nil {
			return p, usageErrorf("--parent: %q is not a run id (a UUID)", f.parent)
		}
		p.parent = &id
	}
	return p, nil
}

// instant reads a time given as a duration back from now or as RFC 3339.
func instant(flag, value string, now time.Time) (*time.Time, error) {
	if value == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(value); err == nil {
		if d < 0 {
			return nil, usageErrorf("%s: %q is negative", flag, value)
		}
		t := now.Add(-d).UTC()
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, value)
	if err != nil {
		return nil, usageErrorf("%s: %q is neither a duration (1h, 30m) nor an RFC 3339 time", flag, value)
	}
	return &t, nil
}

func (a *app) runsListCommand() *cobra.Command {
	var page pageFlags
	var filter runFilter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			f, err := filter.parse(time.Now())
			if err != nil {
				return err
			}
			params := &client.ListRunsParams{
				Workflow: f.workflow, Status: f.statuses, Parent: f.parent,
				CreatedAfter: f.createdAfter, CreatedBefore: f.createdBefore,
				Limit: limit, Cursor: cursor,
			}
			body, err := a.read(a.api.ListRuns(cmd.Context(), params))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.RunList
				if err := decode(body, &list); err != nil {
					return err
				}
				now := time.Now()
				t := a.newTable(w, "ID", "WORKFLOW", "STATUS", "ATTEMPT", "CREATED", "DURATION", "ERROR")
				for _, r := range list.Items {
					errText := "-"
					if r.Error != nil {
						errText = oneLine(r.Error.Message, 60)
					}
					t.row(r.Id.String(), workflowRef(r.Workflow), a.paint(string(r.Status)), strconv.Itoa(r.Attempt),
						age(r.CreatedAt, now), span(r.StartedAt, r.FinishedAt, now), errText)
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 50)
	filter.add(cmd)
	return cmd
}

func workflowRef(w client.WorkflowRef) string { return fmt.Sprintf("%s@%d", w.Name, w.Version) }

// oneLine shortens text to one line of at most limit characters.
func oneLine(s string, limit int) string {
	s = printable(strings.Join(strings.Fields(s), " "))
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit-1]) + "…"
	}
	return s
}

func (a *app) runsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a run: its state, error, what it waits for, input, context and output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			body, err := a.read(a.api.GetRun(cmd.Context(), id))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var r client.Run
				if err := decode(body, &r); err != nil {
					return err
				}
				return a.writeRun(w, r)
			})
		},
	}
}

// writeRun writes a run's detailed view.
func (a *app) writeRun(w io.Writer, r client.Run) error {
	now := time.Now()
	t := a.newTable(w)
	t.row("ID:", r.Id.String())
	t.row("Workflow:", workflowRef(r.Workflow))
	t.row("Status:", a.paint(string(r.Status)))
	t.row("Attempt:", strconv.Itoa(r.Attempt))
	if r.ParentRunId != nil {
		t.row("Parent:", r.ParentRunId.String())
	}
	if r.IdempotencyKey != nil {
		t.row("Idempotency key:", *r.IdempotencyKey)
	}
	t.row("Created:", timestamp(&r.CreatedAt))
	t.row("Started:", timestamp(r.StartedAt))
	t.row("Finished:", timestamp(r.FinishedAt))
	t.row("Duration:", span(r.StartedAt, r.FinishedAt, now))
	if r.Deadline != nil {
		t.row("Deadline:", timestamp(r.Deadline))
	}
	if r.Error != nil {
		t.row("Error:", r.Error.Message)
		t.row("Error code:", orDash(r.Error.Code))
		if r.Error.Step != nil {
			t.row("Failed step:", *r.Error.Step)
		}
	}
	t.row("Input:", compact(r.Input, 0))
	t.row("Context:", compact(r.Context, 0))
	if r.Output != nil {
		t.row("Output:", compact(r.Output, 0))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if r.WaitingFor != nil && len(*r.WaitingFor) > 0 {
		fmt.Fprintln(w)
		for _, wf := range *r.WaitingFor {
			fmt.Fprintln(w, waitingLine(r.Id, wf))
		}
	}
	return nil
}

// waitingLine says what a waiting step waits for, and how to give it.
func waitingLine(run uuid.UUID, wf client.WaitingFor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "waiting: step %s (%s)", wf.Step, wf.Type)
	if wf.Deadline != nil {
		fmt.Fprintf(&b, " until %s", timestamp(wf.Deadline))
	}
	if wf.Events != nil {
		for _, e := range *wf.Events {
			fmt.Fprintf(&b, "; event %s key %s (durable events publish %s %s)", e.Event, e.Key, e.Event, e.Key)
		}
	}
	if q := wf.Question; q != nil {
		if q.Prompt != nil {
			fmt.Fprintf(&b, "; %s %q", q.Kind, *q.Prompt)
		} else {
			fmt.Fprintf(&b, "; %s", q.Kind)
		}
		if q.Options != nil {
			fmt.Fprintf(&b, " [%s]", strings.Join(*q.Options, ", "))
		}
		fmt.Fprintf(&b, " (durable input %s %s VALUE)", run, wf.Step)
	}
	return printable(b.String())
}

// stepsPage fetches a page of a run's step executions.
func (a *app) stepsPage(cmd *cobra.Command, id uuid.UUID, page pageFlags) ([]byte, error) {
	limit, cursor, err := page.params()
	if err != nil {
		return nil, err
	}
	return a.read(a.api.ListRunSteps(cmd.Context(), id, &client.ListRunStepsParams{Limit: limit, Cursor: cursor}))
}

func (a *app) runsStepsCommand() *cobra.Command {
	var page pageFlags
	var attempts bool
	cmd := &cobra.Command{
		Use:   "steps ID",
		Short: "List a run's steps with their status, attempts and durations (--attempts: every attempt)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			body, err := a.stepsPage(cmd, id, page)
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.StepExecutionList
				if err := decode(body, &list); err != nil {
					return err
				}
				a.writeSteps(w, list.Items, attempts, time.Now())
				a.more(list.NextCursor)
				return nil
			})
		},
	}
	page.add(cmd, 1000)
	cmd.Flags().BoolVar(&attempts, "attempts", false, "list every attempt under its step: status, HTTP status, duration, error")
	return cmd
}

// writeSteps writes the table of a run's steps.
func (a *app) writeSteps(w io.Writer, steps []client.StepExecution, attempts bool, now time.Time) {
	t := a.newTable(w, "STEP", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "ERROR")
	for _, s := range steps {
		t.row(s.Key, s.Type, a.paint(string(s.Status)), strconv.Itoa(len(s.Attempts)),
			span(s.StartedAt, s.FinishedAt, now), stepError(s.Error))
		if !attempts {
			continue
		}
		for _, at := range s.Attempts {
			httpStatus := "-"
			if at.HttpStatus != nil {
				httpStatus = "HTTP " + strconv.Itoa(*at.HttpStatus)
			}
			d := span(&at.StartedAt, at.FinishedAt, now)
			if at.DurationMs != nil {
				d = duration(time.Duration(*at.DurationMs) * time.Millisecond)
			}
			t.row("  #"+strconv.Itoa(at.Attempt), httpStatus, a.paint(string(at.Status)), "", d, stepError(at.Error))
		}
	}
	_ = t.flush()
}

// stepError is a step's error on one line: its message, or the JSON.
func stepError(e any) string {
	switch v := e.(type) {
	case nil:
		return "-"
	case string:
		return oneLine(v, 80)
	case map[string]any:
		if m, ok := v["message"].(string); ok {
			return oneLine(m, 80)
		}
	}
	return oneLine(compact(e, 0), 80)
}

func (a *app) runsHistoryCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "List a run's history, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			body, err := a.read(a.api.ListRunHistory(cmd.Context(), id, &client.ListRunHistoryParams{Limit: limit, Cursor: cursor}))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.HistoryEventList
				if err := decode(body, &list); err != nil {
					return err
				}
				t := a.newTable(w, "TIME", "EVENT", "STEP", "ATTEMPT", "DATA")
				for _, h := range list.Items {
					attempt := "-"
					if h.Attempt != nil {
						attempt = strconv.Itoa(*h.Attempt)
					}
					t.row(h.Time.UTC().Format("15:04:05.000"), h.Type, orDash(h.Step), attempt, compact(h.Data, 80))
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 1000)
	return cmd
}

func (a *app) runsGraphCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph ID",
		Short: "Draw a run's workflow with each step's state laid over it: Mermaid, DOT or Cytoscape JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			if err := checkGraphFormat(format); err != nil {
				return err
			}
			f := client.GetRunGraphParamsFormat(format)
			body, err := a.read(a.api.GetRunGraph(cmd.Context(), id, &client.GetRunGraphParams{Format: &f}))
			if err != nil {
				return err
			}
			return a.writeGraph(format, body)
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid, dot or cytoscape")
	return cmd
}

func (a *app) runsStartCommand() *cobra.Command {
	var input, idempotencyKey string
	var ver int
	var wait bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "start WORKFLOW",
		Short: "Start a run of a workflow (--wait: follow it to its end)",
		Long: `start starts a run of WORKFLOW's latest version (or --version N) with --input:
JSON, @FILE for a file of JSON, or - for standard input.

With --idempotency-key, the same key and request again return the run the key
started instead of starting another: a start is then safe to repeat.

With --wait, the run is followed to its end, as watch does, and the exit code
says how it ended: 0 succeeded, 1 failed, cancelled, timed out or compensated.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.StartRunRequest{Workflow: args[0]}
			if input != "" {
				raw, err := a.jsonArg("--input", input)
				if err != nil {
					return err
				}
				req.Input = raw
			}
			if ver != 0 {
				if ver < 1 {
					return usageErrorf("--version must be 1 or more")
				}
				v := int32(ver)
				req.Version = &v
			}
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			params := &client.StartRunParams{}
			if idempotencyKey != "" {
				params.IdempotencyKey = &idempotencyKey
			}
			body, err := a.read(a.api.StartRun(cmd.Context(), params, req))
			if err != nil {
				return err
			}
			var r client.Run
			if err := decode(body, &r); err != nil {
				return err
			}
			if wait {
				return a.follow(cmd.Context(), r.Id, interval)
			}
			return a.emit(body, func(w io.Writer) error {
				fmt.Fprintf(w, "started run %s of %s (%s)\n", r.Id, workflowRef(r.Workflow), a.paint(string(r.Status)))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "the run's input: JSON, @FILE or - for standard input")
	cmd.Flags().IntVar(&ver, "version", 0, "the workflow version to run (default the latest)")
	cmd.Flags().StringVar(&idempotencyKey, "idempotency-key", "", "makes the start idempotent: the same key and request return the same run")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the run to its end; the exit code says how it ended")
	cmd.Flags().DurationVar(&interval, "interval", defaultInterval, "with --wait, how often to look at the run")
	return cmd
}

func (a *app) runsCancelCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel an unfinished run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			req := client.CancelRunRequest{}
			if reason != "" {
				req.Reason = &reason
			}
			body, err := a.read(a.api.CancelRun(cmd.Context(), id, req))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var r client.Run
				if err := decode(body, &r); err != nil {
					return err
				}
				fmt.Fprintf(w, "run %s is %s\n", r.Id, a.paint(string(r.Status)))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the run's history")
	return cmd
}

func (a *app) runsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a finished run with its steps, attempts and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			if _, err := a.read(a.api.DeleteRun(cmd.Context(), id)); err != nil {
				return err
			}
			if a.output == outputText {
				fmt.Fprintf(a.env.Stdout, "deleted run %s\n", id)
			}
			return nil
		},
	}
}

func (a *app) runsWatchCommand() *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a run to its end: a live step list on a terminal, a line per change when piped",
		Long: `watch follows a run until it ends. On a terminal its steps are listed and
redrawn in place as they change; when standard output is not a terminal, each
change is printed on a line of its own. With -o json or -o yaml, nothing is
printed until the end, then the run as the API answers it.

The exit code says how the run ended: 0 succeeded; 1 failed, cancelled,
timed out, compensated or compensation failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			return a.follow(cmd.Context(), id, interval)
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", defaultInterval, "how often to look at the run")
	return cmd
}
