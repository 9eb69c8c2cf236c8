package cli

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/durablehq/durable/client"
)

func (a *app) runsRetryCommand() *cobra.Command {
	var input, runContext, fromStep, reason string
	var wait bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Retry a failed, timed-out, cancelled or compensation-failed run from its failed step",
		Long: `retry resumes the same run from the step that failed (the steps that
succeeded are not called again), or with --from-step NAME from that top-level
step on. --input and --context are JSON Merge Patches (RFC 7396: null removes
a member) applied to the run's input and context: JSON, @FILE or - for
standard input. --reason is recorded in the run's history.

With --wait, the run is followed to its end, as watch does.`,
		Example: `  durable runs retry 0190c3e2-… --context '{"token": "fresh"}' --reason "rotated the key"
  durable runs retry 0190c3e2-… --from-step charge --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			req := client.RetryRunRequest{}
			if input != "" {
				if req.Input, err = a.jsonArg("--input", input); err != nil {
					return err
				}
			}
			if runContext != "" {
				if req.Context, err = a.jsonArg("--context", runContext); err != nil {
					return err
				}
			}
			if fromStep != "" {
				req.FromStep = &fromStep
			}
			if reason != "" {
				req.Reason = &reason
			}
			body, err := a.read(a.api.RetryRun(cmd.Context(), id, req))
			if err != nil {
				return err
			}
			if wait {
				return a.follow(cmd.Context(), id, interval)
			}
			return a.emit(body, func(w io.Writer) error {
				var r client.Run
				if err := decode(body, &r); err != nil {
					return err
				}
				fmt.Fprintf(w, "retried run %s (attempt %d); it is %s\n", r.Id, r.Attempt, a.paint(string(r.Status)))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "a JSON Merge Patch of the run's input: JSON, @FILE or -")
	cmd.Flags().StringVar(&runContext, "context", "", "a JSON Merge Patch of the run's context: JSON, @FILE or -")
	cmd.Flags().StringVar(&fromStep, "from-step", "", "rerun from this top-level step instead of the failed one")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded in the run's history")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the run to its end; the exit code says how it ended")
	cmd.Flags().DurationVar(&interval, "interval", defaultInterval, "with --wait, how often to look at the run")
	return cmd
}

func (a *app) runsBulkCommand() *cobra.Command {
	return group("bulk", "Cancel or retry every run a filter matches, as an operation workers process",
		a.runsBulkActionCommand("cancel"),
		a.runsBulkActionCommand("retry"),
	)
}

func (a *app) runsBulkActionCommand(kind string) *cobra.Command {
	var filter runFilter
	var dryRun bool
	var reason string
	short := "Cancel every unfinished run the filter matches"
	if kind == "retry" {
		short = "Retry every retryable run the filter matches"
	}
	cmd := &cobra.Command{
		Use:   kind + " [filters]",
		Short: short,
		Long: short + `. The filters are the run list's; at least one is needed.
With --dry-run, it prints how many runs match and changes nothing. Otherwise
it creates an operation, which workers process in batches: "durable operations
show ID" tells its progress.`,
		Example: fmt.Sprintf(`  durable runs bulk %s --workflow checkout --status failed --since 2h --dry-run
  durable runs bulk %s --workflow checkout --status failed --since 2h --reason "incident 42"`, kind, kind),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := filter.parse(time.Now())
			if err != nil {
				return err
			}
			if f == (parsedFilter{}) {
				return usageErrorf("give at least one filter: --workflow, --status, --since, --before or --parent")
			}
			req := client.BulkRequest{Filter: client.RunFilter{
				Workflow: f.workflow, Status: f.statuses, Parent: f.parent,
				CreatedAfter: f.createdAfter, CreatedBefore: f.createdBefore,
			}}
			if dryRun {
				req.DryRun = &dryRun
			}
			if reason != "" {
				req.Reason = &reason
			}
			var res *http.Response
			if kind == "cancel" {
				res, err = a.api.BulkCancelRuns(cmd.Context(), req)
			} else {
				res, err = a.api.BulkRetryRuns(cmd.Context(), req)
			}
			body, err := a.read(res, err)
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				if dryRun {
					var d client.BulkDryRun
					if err := decode(body, &d); err != nil {
						return err
					}
					fmt.Fprintf(w, "dry run: the filter matches %d runs; nothing changed\n", d.Matched)
					return nil
				}
				var op client.Operation
				if err := decode(body, &op); err != nil {
					return err
				}
				fmt.Fprintf(w, "created operation %s (%s, %s); follow it with: durable operations show %s\n", op.Id, op.Kind, op.State, op.Id)
				return nil
			})
		},
	}
	filter.add(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only count the runs the filter matches")
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the operation and in each run's history")
	return cmd
}

func (a *app) operationsCommand() *cobra.Command {
	return group("operations", "List and show bulk operations",
		a.operationsListCommand(),
		a.operationsShowCommand(),
		a.operationsCancelCommand(),
	)
}

func (a *app) operationsListCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List bulk operations, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			body, err := a.read(a.api.ListOperations(cmd.Context(), &client.ListOperationsParams{Limit: limit, Cursor: cursor}))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.OperationList
				if err := decode(body, &list); err != nil {
					return err
				}
				now := time.Now()
				t := a.newTable(w, "ID", "KIND", "STATE", "MATCHED", "DONE", "SKIPPED", "FAILED", "CREATED", "FILTER")
				for _, op := range list.Items {
					t.row(op.Id.String(), string(op.Kind), a.paint(string(op.State)), itoa(op.Matched), itoa(op.Done),
						itoa(op.Skipped), itoa(op.Failed), age(op.CreatedAt, now), filterText(op.Filter))
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 50)
	return cmd
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// filterText says a run filter the way the command line gives it.
func filterText(f client.RunFilter) string {
	var parts []string
	if f.Workflow != nil {
		parts = append(parts, "--workflow "+*f.Workflow)
	}
	if f.Status != nil {
		s := make([]string, len(*f.Status))
		for i, st := range *f.Status {
			s[i] = string(st)
		}
		parts = append(parts, "--status "+strings.Join(s, ","))
	}
	if f.CreatedAfter != nil {
		parts = append(parts, "--since "+timestamp(f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		parts = append(parts, "--before "+timestamp(f.CreatedBefore))
	}
	if f.Parent != nil {
		parts = append(parts, "--parent "+f.Parent.String())
	}
	return strings.Join(parts, " ")
}

func (a *app) operationsShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a bulk operation's progress and its failures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "an operation")
			if err != nil {
				return err
			}
			body, err := a.read(a.api.GetOperation(cmd.Context(), id))
			if err != nil {
				return err
			}
			return a.emit(body, a.operationView(body))
		},
	}
}

func (a *app) operationsCancelCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Stop a bulk operation at its next batch (the runs it already did stay done)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "an operation")
			if err != nil {
				return err
			}
			body, err := a.read(a.api.CancelOperation(cmd.Context(), id))
			if err != nil {
				return err
			}
			return a.emit(body, a.operationView(body))
		},
	}
}

// operationView prints an operation's answer as a view, with its failures.
func (a *app) operationView(body []byte) func(w io.Writer) error {
	return func(w io.Writer) error {
		var op client.Operation
		if err := decode(body, &op); err != nil {
			return err
		}
		t := a.newTable(w)
		t.row("ID:", op.Id.String())
		t.row("Kind:", string(op.Kind))
		t.row("State:", a.paint(string(op.State)))
		t.row("Filter:", filterText(op.Filter))
		t.row("Reason:", orDash(op.Reason))
		t.row("Matched:", itoa(op.Matched))
		t.row("Done:", itoa(op.Done))
		t.row("Skipped:", itoa(op.Skipped))
		t.row("Failed:", itoa(op.Failed))
		t.row("Created:", timestamp(&op.CreatedAt))
		t.row("Finished:", timestamp(op.FinishedAt))
		if err := t.flush(); err != nil {
			return err
		}
		if len(op.Failures) > 0 {
			fmt.Fprintln(w)
			ft := a.newTable(w, "RUN", "FAILURE")
			for _, f := range op.Failures {
				ft.row(f.RunId.String(), oneLine(f.Message, 120))
			}
			return ft.flush()
		}
		return nil
	}
}
