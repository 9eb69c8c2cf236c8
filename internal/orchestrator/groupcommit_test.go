package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/workflow"
)

// TestGroupCommitFencesEachTransition records many steps' results at once,
// so that they are committed together. A quarter come from a worker whose
// lease is gone, and a quarter are delivered twice: the stale ones and one
// of each pair are refused one by one, and the others are recorded. A
// result sent again by the worker that recorded it is recognised.
func TestGroupCommitFencesEachTransition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := newTestService(t)
	_, _, err := svc.CreateWorkflow(ctx, []byte(`{"name": "two", "steps": [
		{"name": "a", "type": "call", "url": "http://127.0.0.1:1/a"},
		{"name": "b", "type": "call", "url": "http://127.0.0.1:1/b", "input": {"from_a": "${ steps.a.output }"}}]}`))
	require.NoError(t, err)
	const runs = 64
	for i := range runs {
		_, _, err := svc.StartRun(ctx, StartRun{Workflow: "two", Input: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))})
		require.NoError(t, err)
	}
	var attempts []*attempt
	for len(attempts) < runs {
		c, err := svc.claim(ctx, runs)
		require.NoError(t, err)
		require.Empty(t, c.prepared)
		attempts = append(attempts, c.attempts...)
	}

	fenced := map[uuid.UUID]bool{}
	twice := map[int]*attempt{}
	for i, a := range attempts {
		switch i % 4 {
		case 1:
			a.item.LeaseToken = uuid.New() // another worker took the step over
			fenced[a.state.Run.ID] = true
		case 2:
			again, st := *a, *a.state
			st.Steps, st.Outputs = maps.Clone(st.Steps), maps.Clone(st.Outputs)
			again.state = &st
			twice[i] = &again
		}
	}
	answer := func(i int) httpstep.Result {
		return httpstep.Result{Outcome: httpstep.Succeeded, HTTPStatus: 200, Output: json.RawMessage(fmt.Sprintf(`%d`, i))}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(attempts))
	nexts := make([]*attempt, len(attempts))
	againErrs := make([]error, len(attempts))
	againNexts := make([]*attempt, len(attempts))
	for i, a := range attempts {
		wg.Go(func() { nexts[i], errs[i] = svc.recordResult(ctx, a, answer(i), false) })
		if again := twice[i]; again != nil {
			wg.Go(func() { againNexts[i], againErrs[i] = svc.recordResult(ctx, again, answer(i), false) })
		}
	}
	wg.Wait()
	for i := range twice {
		// One of the pair was recorded, and the other refused.
		if errors.Is(errs[i], errLeaseLost) {
			require.NoError(t, againErrs[i])
			errs[i], nexts[i] = nil, againNexts[i]
		} else {
			require.ErrorIs(t, againErrs[i], errLeaseLost, "a result delivered twice was recorded twice")
		}
	}
	// A result sent again by the worker that recorded it, as after a
	// commit it did not hear of, is recognised as recorded: the same next
	// attempt goes on.
	for i, a := range attempts {
		if i%4 == 3 {
			next, err := svc.recordResult(ctx, a, answer(i), false)
			require.NoError(t, err)
			require.Equal(t, nexts[i].execID, next.execID)
			require.Equal(t, nexts[i].token, next.token)
		}
	}
	for i, a := range attempts {
		steps, err := svc.ListSteps(ctx, a.state.Run.ID, nil, 10)
		require.NoError(t, err)
		if fenced[a.state.Run.ID] {
			require.ErrorIs(t, errs[i], errLeaseLost)
			require.Nil(t, nexts[i])
			require.Len(t, steps, 1)
			require.Equal(t, "running", steps[0].Status, "a refused result changed its step")
			continue
		}
		require.NoError(t, errs[i])
		require.NotNil(t, nexts[i])
		require.Equal(t, "b", nexts[i].step.Name)
		require.JSONEq(t, fmt.Sprintf(`{"from_a": %d}`, i), string(nexts[i].input))
		require.Len(t, steps, 2)
		require.Equal(t, "succeeded", steps[0].Status)
		require.JSONEq(t, fmt.Sprintf(`%d`, i), string(steps[0].Output))
		require.Equal(t, "running", steps[1].Status)
		detail, err := svc.GetRun(ctx, a.state.Run.ID)
		require.NoError(t, err)
		require.Equal(t, workflow.RunRunning, detail.Status)
	}
}
