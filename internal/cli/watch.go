package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/term"

	"github.com/durablehq/durable/client"
)

// defaultInterval is how often watch and --wait look at a run: often
// enough to feel live, two small requests each time.
const defaultInterval = 500 * time.Millisecond

// ended says whether a run's status is final.
func ended(s client.RunStatus) bool {
	switch s {
	case client.RunStatusSucceeded, client.RunStatusFailed, client.RunStatusCancelled,
		client.RunStatusTimedOut, client.RunStatusCompensated, client.RunStatusCompensationFailed:
		return true
	}
	return false
}

// progress shows a run as it goes, each time it is looked at.
type progress interface {
	show(r client.Run, steps []client.StepExecution, now time.Time)
}

// follow looks at a run every interval until it ends, showing its
// progress: redrawn in place on a terminal, a line per change otherwise,
// nothing with -o json or yaml (which print the run at the end). The
// error is nil when the run succeeded, and has exit code 1 when it ended
// otherwise.
func (a *app) follow(ctx context.Context, id uuid.UUID, interval time.Duration) error {
	var view progress
	switch {
	case a.output != outputText:
	case a.tty:
		view = &liveView{a: a, out: a.env.Stdout}
	default:
		view = &lineView{a: a, out: a.env.Stdout, steps: map[string]stepState{}}
	}
	var body []byte
	var run client.Run
	for {
		var err error
		body, err = a.read(a.api.GetRun(ctx, id))
		if err != nil {
			return err
		}
		// A fresh value each time: decoding into the last one would keep
		// the members this answer leaves out, such as waiting_for.
		run = client.Run{}
		if err := decode(body, &run); err != nil {
			return err
		}
		if view != nil {
			steps, err := a.allSteps(ctx, id)
			if err != nil {
				return err
			}
			view.show(run, steps, time.Now())
		}
		if ended(run.Status) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	if view == nil {
		if err := a.emit(body, nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.env.Stdout, "run %s %s in %s\n", run.Id, a.paint(string(run.Status)), span(run.StartedAt, run.FinishedAt, time.Now()))
		if run.Output != nil {
			fmt.Fprintf(a.env.Stdout, "output: %s\n", compact(run.Output, 0))
		}
	}
	if run.Status == client.RunStatusSucceeded {
		return nil
	}
	msg := fmt.Sprintf("run %s %s", run.Id, run.Status)
	if run.Error != nil {
		msg += ": " + run.Error.Message
	}
	return &exitError{code: ExitRunFailed, err: fmt.Errorf("%s", msg)}
}

// allSteps fetches a run's step executions, every page of them.
func (a *app) allSteps(ctx context.Context, id uuid.UUID) ([]client.StepExecution, error) {
	limit := 1000
	var all []client.StepExecution
	var cursor *string
	for {
		body, err := a.read(a.api.ListRunSteps(ctx, id, &client.ListRunStepsParams{Limit: &limit, Cursor: cursor}))
		if err != nil {
			return nil, err
		}
		var list client.StepExecutionList
		if err := decode(body, &list); err != nil {
			return nil, err
		}
		all = append(all, list.Items...)
		if list.NextCursor == nil || *list.NextCursor == "" {
			return all, nil
		}
		cursor = list.NextCursor
	}
}

// liveView redraws the run's step list in place on a terminal.
type liveView struct {
	a     *app
	out   io.Writer
	lines int // how many lines the last frame took
}

func (v *liveView) show(r client.Run, steps []client.StepExecution, now time.Time) {
	width, height := 80, 24
	if f, ok := v.out.(*os.File); ok {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			width, height = w, h
		}
	}
	var table bytes.Buffer
	v.a.writeSteps(&table, steps, false, now)
	stepLines := strings.Split(strings.TrimRight(table.String(), "\n"), "\n")
	header := v.a.bold(fmt.Sprintf("run %s  %s", r.Id, workflowRef(r.Workflow))) + "  " +
		v.a.paint(string(r.Status)) + "  " + span(r.StartedAt, r.FinishedAt, now)
	var waits []string
	if r.WaitingFor != nil {
		for _, wf := range *r.WaitingFor {
			waits = append(waits, waitingLine(r.Id, wf))
		}
	}
	// A frame taller than the terminal could not be redrawn in place:
	// the steps that began first give way, the table's header stays.
	room := height - 1 - 2 - len(waits)
	if room < 3 {
		room = 3
	}
	if len(stepLines) > room {
		hidden := len(stepLines) - room + 1
		stepLines = append([]string{stepLines[0], fmt.Sprintf("… %d earlier steps", hidden)}, stepLines[1+hidden:]...)
	}
	frame := append(append([]string{header, ""}, stepLines...), waits...)
	var b strings.Builder
	if v.lines > 0 {
		// Up to the frame's first line, and clear from there down.
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", v.lines)
	}
	for _, l := range frame {
		b.WriteString(truncateVisible(l, width-1))
		b.WriteString("\n")
	}
	v.lines = len(frame)
	_, _ = io.WriteString(v.out, b.String())
}

// truncateVisible cuts s to at most n visible characters, escape codes
// not counted, and resets the colour when it cut.
func truncateVisible(s string, n int) string {
	visible := 0
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] == '\x1b' {
			j := strings.IndexByte(s[i:], 'm')
			if j < 0 {
				break
			}
			b.WriteString(s[i : i+j+1])
			i += j + 1
			continue
		}
		r := []rune(s[i:])[0]
		if visible == n {
			if strings.Contains(s, "\x1b") {
				b.WriteString(colorReset)
			}
			return b.String()
		}
		b.WriteRune(r)
		visible++
		i += len(string(r))
	}
	return b.String()
}

// stepState is what the line view last said of a step.
type stepState struct {
	status   client.StepExecutionStatus
	attempts int
}

// lineView prints a line for each change, for a log or a pipe.
type lineView struct {
	a       *app
	out     io.Writer
	status  client.RunStatus
	steps   map[string]stepState
	waiting string
}

func (v *lineView) show(r client.Run, steps []client.StepExecution, now time.Time) {
	at := now.UTC().Format("15:04:05")
	if r.Status != v.status {
		if v.status == "" {
			fmt.Fprintf(v.out, "%s run %s of %s is %s\n", at, r.Id, workflowRef(r.Workflow), r.Status)
		} else if !ended(r.Status) {
			fmt.Fprintf(v.out, "%s run %s\n", at, r.Status)
		}
		v.status = r.Status
	}
	for _, s := range steps {
		st := stepState{status: s.Status, attempts: len(s.Attempts)}
		if v.steps[s.Key] == st {
			continue
		}
		v.steps[s.Key] = st
		line := fmt.Sprintf("%s step %s %s", at, s.Key, s.Status)
		switch {
		case s.FinishedAt != nil:
			line += " in " + span(s.StartedAt, s.FinishedAt, now)
			if s.Error != nil {
				line += ": " + stepError(s.Error)
			}
		case st.attempts > 0:
			line += " (attempt " + strconv.Itoa(st.attempts) + ")"
		}
		fmt.Fprintln(v.out, line)
	}
	var waits []string
	if r.WaitingFor != nil {
		for _, wf := range *r.WaitingFor {
			waits = append(waits, waitingLine(r.Id, wf))
		}
	}
	if w := strings.Join(waits, "\n"); w != v.waiting {
		v.waiting = w
		for _, l := range waits {
			fmt.Fprintf(v.out, "%s %s\n", at, l)
		}
	}
}
