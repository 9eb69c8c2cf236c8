package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/durablehq/durable/client"
)

func (a *app) schedulesCommand() *cobra.Command {
	return group("schedules", "Create, list, inspect, pause, resume, trigger and delete cron schedules",
		a.schedulesListCommand(),
		a.schedulesShowCommand(),
		a.schedulesCreateCommand(),
		a.scheduleActionCommand("pause", "Pause a schedule: it fires no more until resumed"),
		a.scheduleActionCommand("resume", "Resume a paused schedule"),
		a.schedulesTriggerCommand(),
		a.schedulesDeleteCommand(),
		a.schedulesPreviewCommand(),
	)
}

func (a *app) schedulesListCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List schedules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			body, err := a.read(a.api.ListSchedules(cmd.Context(), &client.ListSchedulesParams{Limit: limit, Cursor: cursor}))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.ScheduleList
				if err := decode(body, &list); err != nil {
					return err
				}
				t := a.newTable(w, "ID", "NAME", "WORKFLOW", "CRON", "TIMEZONE", "PAUSED", "NEXT FIRE")
				for _, s := range list.Items {
					next := timestamp(s.NextFireAt)
					if s.Paused {
						next = "-"
					}
					t.row(s.Id.String(), s.Name, s.Workflow, s.Cron, s.Timezone, strconv.FormatBool(s.Paused), next)
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 50)
	return cmd
}

func (a *app) schedulesShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a schedule, its next fire times and its recent firings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a schedule")
			if err != nil {
				return err
			}
			body, err := a.read(a.api.GetSchedule(cmd.Context(), id))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var s client.ScheduleDetail
				if err := decode(body, &s); err != nil {
					return err
				}
				t := a.newTable(w)
				t.row("ID:", s.Id.String())
				t.row("Name:", s.Name)
				wf := s.Workflow
				if s.Version != nil {
					wf += "@" + strconv.Itoa(*s.Version)
				}
				t.row("Workflow:", wf)
				t.row("Cron:", s.Cron)
				t.row("Time zone:", s.Timezone)
				t.row("Overlap policy:", string(s.OverlapPolicy))
				t.row("Catch-up window:", s.CatchupWindow)
				t.row("Paused:", strconv.FormatBool(s.Paused))
				t.row("Input:", compact(s.Input, 0))
				t.row("Source:", string(s.Source))
				t.row("Created:", timestamp(&s.CreatedAt))
				if err := t.flush(); err != nil {
					return err
				}
				if len(s.NextFireTimes) > 0 {
					fmt.Fprintln(w, "\nNext fire times:")
					for _, ft := range s.NextFireTimes {
						fmt.Fprintln(w, "  "+timestamp(&ft))
					}
				}
				if len(s.Fires) > 0 {
					fmt.Fprintln(w)
					fires := a.newTable(w, "FIRE TIME", "FIRED", "OUTCOME", "MANUAL", "RUN")
					for _, f := range s.Fires {
						run := "-"
						if f.RunId != nil {
							run = f.RunId.String()
						}
						fires.row(timestamp(&f.FireTime), timestamp(&f.FiredAt), a.paint(string(f.Outcome)), strconv.FormatBool(f.Manual), run)
					}
					return fires.flush()
				}
				return nil
			})
		},
	}
}

func (a *app) schedulesCreateCommand() *cobra.Command {
	var name, workflow, cron, timezone, input, overlap, catchup string
	var ver int
	var paused bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a schedule that starts runs of a workflow on a cron calendar",
		Example: `  durable schedules create --name nightly --workflow report --cron "0 2 * * *" \
    --timezone Europe/Paris --input '{"scope": "all"}' --overlap skip`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := client.ScheduleRequest{Name: name, Workflow: workflow, Cron: cron}
			if timezone != "" {
				req.Timezone = &timezone
			}
			if input != "" {
				raw, err := a.jsonArg("--input", input)
				if err != nil {
					return err
				}
				req.Input = raw
			}
			if overlap != "" {
				p := client.ScheduleRequestOverlapPolicy(overlap)
				if !p.Valid() {
					return usageErrorf("--overlap must be allow, skip, buffer_one or cancel_other, not %q", overlap)
				}
				req.OverlapPolicy = &p
			}
			if catchup != "" {
				req.CatchupWindow = &catchup
			}
			if ver != 0 {
				req.Version = &ver
			}
			if cmd.Flags().Changed("paused") {
				req.Paused = &paused
			}
			body, err := a.read(a.api.CreateSchedule(cmd.Context(), req))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var s client.Schedule
				if err := decode(body, &s); err != nil {
					return err
				}
				fmt.Fprintf(w, "created schedule %s (%s): %s %q in %s, next at %s\n", s.Id, printable(s.Name), s.Workflow, s.Cron, s.Timezone, timestamp(s.NextFireAt))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the schedule's name (required)")
	f.StringVar(&workflow, "workflow", "", "the workflow it starts (required)")
	f.StringVar(&cron, "cron", "", `a 5-field cron expression or @every, @daily, … (required)`)
	f.StringVar(&timezone, "timezone", "", "an IANA time zone (default UTC)")
	f.StringVar(&input, "input", "", "the input of every run: JSON, @FILE or - for standard input")
	f.StringVar(&overlap, "overlap", "", "overlap policy: allow, skip, buffer_one or cancel_other")
	f.StringVar(&catchup, "catchup-window", "", "how late a missed firing may still be made (a duration)")
	f.IntVar(&ver, "version", 0, "pin a workflow version (default the latest at each firing)")
	f.BoolVar(&paused, "paused", false, "create it paused")
	for _, req := range []string{"name", "workflow", "cron"} {
		_ = cmd.MarkFlagRequired(req)
	}
	return cmd
}

// scheduleActionCommand is pause or resume, which answer the schedule.
func (a *app) scheduleActionCommand(action, short string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a schedule")
			if err != nil {
				return err
			}
			var body []byte
			if action == "pause" {
				body, err = a.read(a.api.PauseSchedule(cmd.Context(), id))
			} else {
				body, err = a.read(a.api.ResumeSchedule(cmd.Context(), id))
			}
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var s client.Schedule
				if err := decode(body, &s); err != nil {
					return err
				}
				if s.Paused {
					fmt.Fprintf(w, "paused schedule %s (%s)\n", s.Id, printable(s.Name))
				} else {
					fmt.Fprintf(w, "resumed schedule %s (%s); next at %s\n", s.Id, printable(s.Name), timestamp(s.NextFireAt))
				}
				return nil
			})
		},
	}
}

func (a *app) schedulesTriggerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trigger ID",
		Short: "Fire a schedule now, as its overlap policy allows",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a schedule")
			if err != nil {
				return err
			}
			body, err := a.read(a.api.TriggerSchedule(cmd.Context(), id))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var f client.ScheduleFire
				if err := decode(body, &f); err != nil {
					return err
				}
				if f.RunId != nil {
					fmt.Fprintf(w, "fired: %s, run %s\n", a.paint(string(f.Outcome)), f.RunId)
				} else {
					fmt.Fprintf(w, "fired: %s\n", a.paint(string(f.Outcome)))
				}
				return nil
			})
		},
	}
}

func (a *app) schedulesDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a schedule (the runs it started stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a schedule")
			if err != nil {
				return err
			}
			if _, err := a.read(a.api.DeleteSchedule(cmd.Context(), id)); err != nil {
				return err
			}
			if a.output == outputText {
				fmt.Fprintf(a.env.Stdout, "deleted schedule %s\n", id)
			}
			return nil
		},
	}
}

func (a *app) schedulesPreviewCommand() *cobra.Command {
	var timezone, from string
	var count int
	cmd := &cobra.Command{
		Use:   "preview CRON",
		Short: "List the next fire times of a cron expression",
		Example: `  durable schedules preview "30 2 * * *" --timezone Europe/Berlin --count 5
  durable schedules preview @hourly`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			params := &client.PreviewScheduleParams{Cron: args[0]}
			if timezone != "" {
				params.Timezone = &timezone
			}
			if from != "" {
				t, err := time.Parse(time.RFC3339, from)
				if err != nil {
					return usageErrorf("--from: %q is not an RFC 3339 time", from)
				}
				params.From = &t
			}
			if cmd.Flags().Changed("count") {
				params.Count = &count
			}
			body, err := a.read(a.api.PreviewSchedule(cmd.Context(), params))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var ft client.FireTimes
				if err := decode(body, &ft); err != nil {
					return err
				}
				loc := time.UTC
				if timezone != "" {
					if l, err := time.LoadLocation(timezone); err == nil {
						loc = l
					}
				}
				t := a.newTable(w, "UTC", "LOCAL")
				for _, f := range ft.Items {
					t.row(f.UTC().Format(time.RFC3339), f.In(loc).Format("2006-01-02 15:04:05 MST"))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&timezone, "timezone", "", "an IANA time zone (default UTC)")
	cmd.Flags().StringVar(&from, "from", "", "list fire times after this RFC 3339 time (default now)")
	cmd.Flags().IntVar(&count, "count", 10, "how many fire times (1-1000)")
	return cmd
}
