package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/durablehq/durable/client"
)

func (a *app) eventsCommand() *cobra.Command {
	return group("events", "Publish events that waiting runs match", a.eventsPublishCommand())
}

func (a *app) eventsPublishCommand() *cobra.Command {
	var payload, id string
	cmd := &cobra.Command{
		Use:   "publish NAME KEY",
		Short: "Publish an event: every run waiting for NAME and KEY resumes",
		Long: `publish publishes an event named NAME with the correlation key KEY (such as
an order id). Every run whose wait_for_event step waits for that name and key
resumes, with --payload (JSON, @FILE or - for standard input) as the step's
output. With --id, publishing is idempotent: an id used before publishes
nothing and answers the earlier event.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := client.PublishEventRequest{Name: args[0], Key: args[1]}
			if payload != "" {
				raw, err := a.jsonArg("--payload", payload)
				if err != nil {
					return err
				}
				req.Payload = raw
			}
			if id != "" {
				req.Id = &id
			}
			body, err := a.read(a.api.PublishEvent(cmd.Context(), req))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var e client.PublishedEvent
				if err := decode(body, &e); err != nil {
					return err
				}
				if e.Duplicate {
					fmt.Fprintf(w, "duplicate: event %s was published before, at %s; nothing published\n", e.Id, timestamp(&e.ReceivedAt))
					return nil
				}
				fmt.Fprintf(w, "published event %s (%s %s); resumed %d waiting steps\n", e.Id, printable(e.Name), printable(e.Key), e.Resumed)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "the event's payload: JSON, @FILE or - for standard input")
	cmd.Flags().StringVar(&id, "id", "", "the event's own id, which makes publishing idempotent")
	return cmd
}

func (a *app) inputCommand() *cobra.Command {
	var by, comment string
	cmd := &cobra.Command{
		Use:   "input RUN STEP VALUE",
		Short: "Give a waiting wait_for_input step its answer: approve, choose, answer or fill a form",
		Long: `input answers the wait_for_input step STEP of run RUN (inside a foreach item or
a loop iteration, its key, such as ship[3].approve).

VALUE is JSON when it parses as JSON, else text:
  true / false          approve or reject an approval
  blue                  choose the option "blue" (or answer the text "blue")
  '"true"'              the text "true", quoted to keep it a string
  '{"amount": 12}'      fill a form (checked against its schema)
  @FILE, -              the JSON in a file, or on standard input`,
		Example: `  durable input 0190c3e2-… approve true --by alice --comment "looks right"
  durable input 0190c3e2-… color blue`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0], "a run")
			if err != nil {
				return err
			}
			value, err := a.inputValue(args[2])
			if err != nil {
				return err
			}
			req := client.InputRequest{Value: value}
			if by != "" {
				req.By = &by
			}
			if comment != "" {
				req.Comment = &comment
			}
			body, err := a.read(a.api.GiveInput(cmd.Context(), id, args[1], req))
			if err != nil {
				return err
			}
			return a.emit(body, func(w io.Writer) error {
				var s client.CallbackStep
				if err := decode(body, &s); err != nil {
					return err
				}
				fmt.Fprintf(w, "step %s of run %s took its input; it is %s\n", s.Step, s.RunId, a.paint(s.Status))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "who answers")
	cmd.Flags().StringVar(&comment, "comment", "", "a comment kept with the answer")
	return cmd
}

// inputValue reads an answer: @FILE and - as JSON, JSON as itself, and
// anything else as text.
func (a *app) inputValue(arg string) (any, error) {
	if arg == "-" || strings.HasPrefix(arg, "@") {
		return a.jsonArg("VALUE", arg)
	}
	if json.Valid([]byte(arg)) {
		return json.RawMessage(arg), nil
	}
	return arg, nil
}
