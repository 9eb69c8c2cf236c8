package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestProbeSleepLatencyLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "DURABLE_POLL_INTERVAL=5s")
	e.startWorker()
	e.createWorkflow(`{"name": "p", "steps": [{"name": "nap", "type": "sleep", "duration": "1s"}]}`)
	id := e.startRun("p", nil)
	r := e.waitRun(id, 20*time.Second)
	h := e.history(id)
	t.Logf("status %s late %v", r.Status, wtHistoryData(t, h, "step_succeeded", "nap"))
}

func TestProbeSequentialSameEvent(t *testing.T) {
	t.Parallel()
	e, _ := stDeploy(t)
	e.createWorkflow(`{"name": "p", "steps": [
	 {"name": "w1", "type": "wait_for_event", "event": "x", "key": "${ input.k }"},
	 {"name": "w2", "type": "wait_for_event", "event": "x", "key": "${ input.k }"}]}`)
	id := e.startRun("p", map[string]any{"k": "a"})
	wtAwaitWaiting(t, e, id, "w1")
	_, pub := wtPublish(t, e, "x", "a", map[string]any{"n": 1}, "")
	t.Logf("resumed %d", pub.Resumed)
	time.Sleep(500 * time.Millisecond)
	r := e.run(id)
	t.Logf("status %s history %v", r.Status, historyKeys(e.history(id)))
}

func TestProbeSharedKeysDeadlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, leanPool)
	e.createWorkflow(`{"name": "p", "steps": [{"name": "w", "type": "wait_for_event", "event": "x", "key": "${ input.k }"}]}`)
	ws := []*proc{e.startWorker(), e.startWorker()}
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 300)
	next := make(chan int)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ids[i], _ = startRunErr(ctx, e.client, "p", map[string]any{"k": fmt.Sprintf("K%d", i%3)})
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	db := assertDB(t, e)
	begin := time.Now()
	for dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'waiting'`) < len(ids) && time.Since(begin) < 90*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("waiting: %d of %d after %s", dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'waiting'`), len(ids), time.Since(begin))
	for _, w := range ws {
		out := w.output()
		t.Logf("deadlocks in worker log: %d; begin work errors %d", strings.Count(out, "deadlock"), strings.Count(out, "begin work"))
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "deadlock") {
				t.Log(l)
				break
			}
		}
	}
	require.True(t, true)
}
