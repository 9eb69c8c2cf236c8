package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/durablehq/durable/client"
	"github.com/durablehq/durable/internal/workflow"
)

func (a *app) workflowsCommand() *cobra.Command {
	return group("workflows", "Push, check, list, show, draw and archive workflow definitions",
		a.workflowsListCommand(),
		a.workflowsShowCommand(),
		a.workflowsVersionsCommand(),
		a.workflowsPushCommand(),
		a.workflowsValidateCommand(),
		a.workflowsGraphCommand(),
		a.workflowsArchiveCommand(true),
		a.workflowsArchiveCommand(false),
	)
}

// pageFlags are the flags of a list: how many items, and from which page.
type pageFlags struct {
	limit  int
	cursor string
}

func (p *pageFlags) add(cmd *cobra.Command, limit int) {
	cmd.Flags().IntVar(&p.limit, "limit", limit, "the most items to list (1-1000)")
	cmd.Flags().StringVar(&p.cursor, "cursor", "", "the next_cursor of the previous page")
}

func (p *pageFlags) params() (*int, *string, error) {
	if p.limit < 1 || p.limit > 1000 {
		return nil, nil, usageErrorf("--limit must be from 1 to 1000, not %d", p.limit)
	}
	var cursor *string
	if p.cursor != "" {
		cursor = &p.cursor
	}
	return &p.limit, cursor, nil
}

// more tells, under a table, how to list the next page.
func (a *app) more(next *string) {
	if next != nil && *next != "" {
		fmt.Fprintf(a.env.Stderr, "more: --cursor %s\n", *next)
	}
}

func (a *app) workflowsListCommand() *cobra.Command {
	var page pageFlags
	var archived bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			params := &client.ListWorkflowsParams{Limit: limit, Cursor: cursor}
			if archived {
				params.Archived = &archived
			}
			body, err := a.read(a.api.ListWorkflows(cmd.Context(), params))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.WorkflowList
				if err := decode(body, &list); err != nil {
					return err
				}
				now := time.Now()
				t := a.newTable(w, "NAME", "LATEST", "UPDATED", "ARCHIVED")
				for _, wf := range list.Items {
					t.row(wf.Name, strconv.Itoa(wf.LatestVersion), age(wf.UpdatedAt, now), strconv.FormatBool(wf.Archived))
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 50)
	cmd.Flags().BoolVar(&archived, "archived", false, "list only the archived workflows")
	return cmd
}

func (a *app) workflowsShowCommand() *cobra.Command {
	var ver int
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a workflow's latest version (or --version N) with its steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			if ver > 0 {
				body, err = a.read(a.api.GetWorkflowVersion(cmd.Context(), args[0], int32(ver)))
			} else {
				body, err = a.read(a.api.GetWorkflow(cmd.Context(), args[0]))
			}
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var v client.WorkflowVersion
				if err := decode(body, &v); err != nil {
					return err
				}
				t := a.newTable(w)
				t.row("Name:", v.Name)
				t.row("Version:", strconv.Itoa(v.Version))
				t.row("Content hash:", v.ContentHash)
				t.row("Created:", timestamp(&v.CreatedAt))
				if v.Archived {
					t.row("Archived:", timestamp(v.ArchivedAt))
				}
				if v.Definition.Description != nil {
					t.row("Description:", *v.Definition.Description)
				}
				if v.Definition.Timeout != nil {
					t.row("Timeout:", *v.Definition.Timeout)
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(w)
				steps := a.newTable(w, "STEP", "TYPE", "DESCRIPTION")
				for _, s := range v.Definition.Steps {
					steps.row(s.Name, s.Type, orDash(s.Description))
				}
				return steps.flush()
			})
		},
	}
	cmd.Flags().IntVar(&ver, "version", 0, "show this version instead of the latest")
	return cmd
}

func (a *app) workflowsVersionsCommand() *cobra.Command {
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "versions NAME",
		Short: "List a workflow's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, cursor, err := page.params()
			if err != nil {
				return err
			}
			body, err := a.read(a.api.ListWorkflowVersions(cmd.Context(), args[0], &client.ListWorkflowVersionsParams{Limit: limit, Cursor: cursor}))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var list client.WorkflowVersionList
				if err := decode(body, &list); err != nil {
					return err
				}
				t := a.newTable(w, "VERSION", "CREATED", "CONTENT HASH")
				for _, v := range list.Items {
					t.row(strconv.Itoa(v.Version), timestamp(&v.CreatedAt), v.ContentHash)
				}
				a.more(list.NextCursor)
				return t.flush()
			})
		},
	}
	page.add(cmd, 50)
	return cmd
}

func (a *app) workflowsPushCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "push FILE",
		Short: "Store a definition (a JSON file, - for standard input) as its workflow's next version",
		Long: `push posts a definition to the API, which validates it completely and stores
it as the next version of its workflow. A definition identical to the latest
version (the same canonical JSON) creates nothing: the existing version is
returned.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := a.readFile(args[0])
			if err != nil {
				return err
			}
			res, err := a.api.CreateWorkflowWithBody(cmd.Context(), "application/json", bytes.NewReader(doc))
			created := err == nil && res.StatusCode == http.StatusCreated
			body, err := a.read(res, err)
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var v client.WorkflowVersion
				if err := decode(body, &v); err != nil {
					return err
				}
				if created {
					fmt.Fprintf(w, "created %s version %d (%s)\n", v.Name, v.Version, v.ContentHash)
				} else {
					fmt.Fprintf(w, "unchanged: %s version %d has this definition (%s)\n", v.Name, v.Version, v.ContentHash)
				}
				return nil
			})
		},
	}
}

// validation is what `workflows validate -o json` prints.
type validation struct {
	File     string             `json:"file"`
	Valid    bool               `json:"valid"`
	Name     string             `json:"name,omitempty"`
	Problems []workflow.Problem `json:"problems"`
}

func (a *app) workflowsValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check definitions offline, with the engine's own parser, listing every problem with its JSON path",
		Long: `validate checks each definition file (- for standard input) exactly as the
API does when it is pushed, without talking to the API: every problem is
printed as FILE: PATH: MESSAGE, where PATH is the JSON Pointer of the
offending value. It exits 1 when a definition is invalid, which makes it a
check for a CI pipeline. The limits are the API's defaults (1 MiB, nesting
depth 32, 1,000 steps).`,
		Args: cobra.MinimumNArgs(1),
		// validate needs no API: it must work offline whatever the
		// environment says about the API.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch a.output {
			case outputText, outputJSON, outputYAML:
				return nil
			}
			return usageErrorf("--output must be text, json or yaml, not %q", a.output)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			invalid := false
			var results []validation
			for _, file := range args {
				doc, err := a.readFile(file)
				if err != nil {
					return err
				}
				r := validation{File: file, Valid: true, Problems: []workflow.Problem{}}
				def, err := workflow.Parse(doc, workflow.DefaultLimits())
				var ve *workflow.ValidationError
				switch {
				case errors.As(err, &ve):
					r.Valid, r.Problems = false, ve.Problems
					invalid = true
				case err != nil:
					return fmt.Errorf("validate %s: %w", file, err)
				default:
					r.Name = def.Name
				}
				results = append(results, r)
			}
			if err := a.printValidations(results); err != nil {
				return err
			}
			if invalid {
				return &exitError{code: ExitRunFailed}
			}
			return nil
		},
	}
}

func (a *app) printValidations(results []validation) error {
	if a.output != outputText {
		var v any = results
		if len(results) == 1 {
			v = results[0]
		}
		body, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode validation: %w", err)
		}
		return a.emit(body, nil)
	}
	for _, r := range results {
		if r.Valid {
			fmt.Fprintf(a.env.Stdout, "%s: valid (workflow %s)\n", r.File, r.Name)
			continue
		}
		for _, p := range r.Problems {
			fmt.Fprintf(a.env.Stdout, "%s: %s\n", r.File, printable(p.String()))
		}
	}
	return nil
}

// graphFormats are the renderings of a graph the API offers.
var graphFormats = []string{"mermaid", "dot", "cytoscape"}

func checkGraphFormat(format string) error {
	for _, f := range graphFormats {
		if f == format {
			return nil
		}
	}
	return usageErrorf("--format must be mermaid, dot or cytoscape, not %q", format)
}

func (a *app) workflowsGraphCommand() *cobra.Command {
	var format string
	var ver int
	cmd := &cobra.Command{
		Use:   "graph NAME",
		Short: "Draw a workflow as a graph: Mermaid (the default), DOT or Cytoscape JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkGraphFormat(format); err != nil {
				return err
			}
			f := client.GetWorkflowGraphParamsFormat(format)
			params := &client.GetWorkflowGraphParams{Format: &f}
			if ver > 0 {
				v := int32(ver)
				params.Version = &v
			}
			body, err := a.read(a.api.GetWorkflowGraph(cmd.Context(), args[0], params))
			if err != nil {
				return err
			}
			return a.writeGraph(format, body)
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "mermaid, dot or cytoscape")
	cmd.Flags().IntVar(&ver, "version", 0, "draw this version instead of the latest")
	return cmd
}

// writeGraph writes a graph as the API drew it: text for Mermaid and DOT,
// JSON (or YAML) for Cytoscape.
func (a *app) writeGraph(format string, body []byte) error {
	if format == "cytoscape" {
		return a.emit(body, func(io.Writer) error { return a.writeJSON(body) })
	}
	_, err := a.env.Stdout.Write(append(bytes.TrimRight(body, "\n"), '\n'))
	return err
}

func (a *app) workflowsArchiveCommand(archive bool) *cobra.Command {
	use, short := "archive NAME", "Archive a workflow: it starts no new runs, and runs in flight finish"
	if !archive {
		use, short = "unarchive NAME", "Undo archive: the workflow starts runs again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			if archive {
				body, err = a.read(a.api.ArchiveWorkflow(cmd.Context(), args[0]))
			} else {
				body, err = a.read(a.api.UnarchiveWorkflow(cmd.Context(), args[0]))
			}
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var v client.WorkflowVersion
				if err := decode(body, &v); err != nil {
					return err
				}
				if v.Archived {
					fmt.Fprintf(w, "archived %s at %s\n", v.Name, timestamp(v.ArchivedAt))
				} else {
					fmt.Fprintf(w, "unarchived %s\n", v.Name)
				}
				return nil
			})
		},
	}
}
