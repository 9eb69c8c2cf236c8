package dashboard

import (
	"fmt"
	"strings"
	"time"

	"github.com/durablehq/durable/internal/workflow"
)

// timeline is a run's Gantt chart, drawn as SVG by the template: a row per
// step execution, a bar per attempt (or per wait), the retry backoffs
// between attempts, and marks for what happened at an instant — a 202, a
// callback's heartbeat, a retry scheduled, a timeout. SVG's own attributes
// place the bars: the Content-Security-Policy allows no inline style.
type timeline struct {
	Width, Height int
	Rows          []timelineRow
	Span          string
	Truncated     bool
}

type timelineRow struct {
	Label string
	// Y is the row's top; BarY its bars' top, MidY its middle, Bottom its
	// end.
	Y, BarY, MidY, Bottom int
	Bars                  []timelineBar
	Marks                 []timelineMark
}

type timelineBar struct {
	X, W  float64
	Class string
	Title string
}

type timelineMark struct {
	X     float64
	Class string
	Title string
}

const (
	timelineWidth  = 1000
	timelineLabel  = 220 // room for the step names on the left
	timelineRowH   = 22
	timelineMaxRow = 200
)

// timelineMarks are the history events shown as marks, with what they
// say.
var timelineMarks = map[string]string{
	workflow.EventStepAccepted:       "accepted (202): waiting for its callback",
	workflow.EventStepHeartbeat:      "callback heartbeat",
	workflow.EventStepRetryScheduled: "retry scheduled",
	workflow.EventStepTimedOut:       "timed out",
	workflow.EventStepAbandoned:      "abandoned: its worker was lost",
	workflow.EventStepSucceeded:      "succeeded",
	workflow.EventStepFailed:         "failed",
}

func buildTimeline(run workflow.Run, steps []workflow.StepExecution, history []workflow.HistoryEvent, now time.Time) timeline {
	start := run.CreatedAt
	end := now
	if run.FinishedAt != nil {
		end = *run.FinishedAt
	}
	if !end.After(start) {
		end = start.Add(time.Millisecond)
	}
	span := end.Sub(start)
	scale := float64(timelineWidth-timelineLabel) / float64(span)
	x := func(t time.Time) float64 {
		if t.Before(start) {
			t = start
		}
		if t.After(end) {
			t = end
		}
		return timelineLabel + float64(t.Sub(start))*scale
	}
	tl := timeline{Width: timelineWidth, Span: duration(span), Truncated: len(history) >= runHistoryShown || len(steps) > timelineMaxRow}
	rows := map[string]int{}
	for _, st := range steps {
		if len(tl.Rows) == timelineMaxRow {
			break
		}
		y := len(tl.Rows) * timelineRowH
		row := timelineRow{Label: st.Key, Y: y, BarY: y + 3, MidY: y + 11, Bottom: y + timelineRowH - 1}
		for i, a := range st.Attempts {
			to := now
			if a.FinishedAt != nil {
				to = *a.FinishedAt
			}
			title := fmt.Sprintf("%s · attempt %d · %s", st.Key, a.Attempt, a.Status)
			if a.HTTPStatus != nil {
				title += fmt.Sprintf(" · HTTP %d", *a.HTTPStatus)
			}
			title += " · " + duration(to.Sub(a.StartedAt))
			row.Bars = append(row.Bars, bar(x(a.StartedAt), x(to), "attempt s-"+a.Status, title))
			if i+1 < len(st.Attempts) && a.FinishedAt != nil {
				next := st.Attempts[i+1].StartedAt
				row.Bars = append(row.Bars, bar(x(*a.FinishedAt), x(next), "backoff",
					fmt.Sprintf("%s · backoff before attempt %d · %s", st.Key, st.Attempts[i+1].Attempt, duration(next.Sub(*a.FinishedAt)))))
			}
		}
		if len(st.Attempts) == 0 && st.StartedAt != nil {
			// Waits and blocks have no attempts: their bar is the execution.
			to := now
			if st.FinishedAt != nil {
				to = *st.FinishedAt
			}
			kind := "block"
			if strings.HasPrefix(st.Type, "wait") || st.Type == string(workflow.StepSleep) {
				kind = "wait"
			}
			row.Bars = append(row.Bars, bar(x(*st.StartedAt), x(to), kind+" s-"+st.Status,
				fmt.Sprintf("%s · %s · %s · %s", st.Key, st.Type, st.Status, duration(to.Sub(*st.StartedAt)))))
		}
		rows[st.Key] = len(tl.Rows)
		tl.Rows = append(tl.Rows, row)
	}
	for _, e := range history {
		what, ok := timelineMarks[e.Type]
		i, found := rows[e.StepKey]
		if !ok || !found {
			continue
		}
		title := e.StepKey + " · " + what + " · " + timestamp(e.Time)
		tl.Rows[i].Marks = append(tl.Rows[i].Marks, timelineMark{X: x(e.Time), Class: "mark " + strings.ReplaceAll(e.Type, "_", "-"), Title: title})
	}
	tl.Height = max(len(tl.Rows), 1)*timelineRowH + 4
	return tl
}

func bar(from, to float64, class, title string) timelineBar {
	// A bar of an instant is still visible.
	return timelineBar{X: from, W: max(to-from, 2), Class: class, Title: title}
}
