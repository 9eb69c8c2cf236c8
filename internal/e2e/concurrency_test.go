package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/client"
)

// Tests in this file run many runs through several worker processes at once
// and check that every transition happened exactly once.

// leanPool keeps each process of a deployment to a few PostgreSQL
// connections (the default is 16): the tests share one server, whose
// max_connections (100 by default) parallel deployments of four processes
// each would otherwise exhaust.
const leanPool = "DURABLE_DB_MAX_CONNS=4"

// assertDB opens a pool on the deployment's database. Tests use it to
// assert on rows (history, work items, attempts), never to change state.
func assertDB(t *testing.T, e *env) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(e.dbURL)
	require.NoError(t, err)
	cfg.MaxConns = 2 // the server's connections are shared by every test
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	// Registered after newEnv's clean-ups, so it runs before the database
	// is dropped.
	t.Cleanup(pool.Close)
	return pool
}

// dbCount runs a query that returns one integer.
func dbCount(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int64
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return int(n)
}

// stepKey names one step of one run.
type stepKey struct {
	run  uuid.UUID
	step string
}

func TestConcurrencyManyRunsThreeWorkers(t *testing.T) {
	t.Parallel()
	const (
		runs  = 200
		steps = 5
	)

	var (
		mu        sync.Mutex
		seen      = map[stepKey]int{}
		webhooks  = map[stepKey]map[string]bool{}
		total     int
		badBodies []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec recorder
		c := rec.readStep(t, r)
		k := stepKey{c.Body.RunID, c.Body.Step}
		mu.Lock()
		total++
		seen[k]++
		if webhooks[k] == nil {
			webhooks[k] = map[string]bool{}
		}
		webhooks[k][c.WebhookID] = true
		if "/"+c.Body.Step != c.Path || c.Body.Attempt != 1 {
			badBodies = append(badBodies, fmt.Sprintf("%s step=%s attempt=%d", c.Path, c.Body.Step, c.Body.Attempt))
		}
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": c.Body.Step}})
	}))
	t.Cleanup(srv.Close)

	e := newEnv(t, leanPool)
	db := assertDB(t, e)
	var def strings.Builder
	def.WriteString(`{"name": "many", "steps": [`)
	for i := 1; i <= steps; i++ {
		if i > 1 {
			def.WriteString(",")
		}
		fmt.Fprintf(&def, `{"name": "s%d", "type": "call", "url": "%s/s%d", "timeout": "10s"}`, i, srv.URL, i)
	}
	def.WriteString(`]}`)
	e.createWorkflow(def.String())
	for range 3 {
		e.startWorker()
	}

	begin := time.Now()
	ids := make([]uuid.UUID, runs)
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < runs; i += 8 {
				var input any = map[string]any{"i": i}
				res, err := e.client.StartRunWithResponse(context.Background(), nil, client.StartRunRequest{Workflow: "many", Input: &input})
				switch {
				case err != nil:
					errs <- err
				case res.StatusCode() != http.StatusCreated:
					errs <- fmt.Errorf("start run %d: %d %s", i, res.StatusCode(), res.Body)
				default:
					ids[i] = res.JSON201.Id
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	started := time.Since(begin)

	// Wait for every run to finish, by the database (200 GETs a poll would
	// load the API more than the workers).
	deadline := time.Now().Add(120 * time.Second)
	for {
		unfinished := dbCount(t, db, `SELECT count(*) FROM runs WHERE status NOT IN ('succeeded','failed','cancelled','timed_out','compensated','compensation_failed')`)
		if unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			rows, err := db.Query(context.Background(), `SELECT status, count(*) FROM runs GROUP BY status`)
			require.NoError(t, err)
			var by []string
			for rows.Next() {
				var s string
				var n int64
				require.NoError(t, rows.Scan(&s, &n))
				by = append(by, fmt.Sprintf("%s=%d", s, n))
			}
			t.Fatalf("%d runs unfinished after 120s (%s)", unfinished, strings.Join(by, " "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	elapsed := time.Since(begin)

	// Every run succeeded, through the API as well as in the database.
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM runs WHERE status = 'succeeded'`), "runs succeeded")
	for _, id := range []uuid.UUID{ids[0], ids[runs/2], ids[runs-1]} {
		require.Equal(t, client.RunStatus("succeeded"), e.run(id).Status)
	}

	// Exactly one step_succeeded per (run, step), one run_succeeded per run,
	// and nothing abandoned, retried or failed.
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM (
		SELECT run_id, step_key FROM history_events WHERE type = 'step_succeeded'
		GROUP BY run_id, step_key HAVING count(*) <> 1) d`), "(run, step) pairs with a step_succeeded count other than 1")
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_succeeded'`), "step_succeeded events")
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(DISTINCT (run_id, step_key)) FROM history_events WHERE type = 'step_succeeded'`), "distinct (run, step) succeeded")
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM (
		SELECT run_id FROM history_events WHERE type = 'run_succeeded'
		GROUP BY run_id HAVING count(*) <> 1) d`), "runs with a run_succeeded count other than 1")
	require.Equal(t, runs, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'run_succeeded'`), "run_succeeded events")
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM (
		SELECT run_id, type, step_key, attempt FROM history_events
		GROUP BY run_id, type, step_key, attempt HAVING count(*) > 1) d`), "history events recorded twice")
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM history_events
		WHERE type IN ('step_abandoned','step_retry_scheduled','step_failed','step_timed_out','run_failed')`), "abandoned, retried or failed steps")
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM step_executions WHERE status = 'succeeded' AND attempt = 1`), "step executions succeeded at attempt 1")
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM step_attempts WHERE status = 'succeeded'`), "step attempts")
	// No work is left, leased or not.
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM work_items`), "work items left")

	// The endpoint saw every step exactly once: with no lease lost there is
	// no reason for a duplicate.
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, badBodies, "requests with the wrong step or attempt")
	require.Len(t, seen, runs*steps, "distinct (run, step) requests")
	var dups []string
	for k, n := range seen {
		if n != 1 || len(webhooks[k]) != 1 {
			dups = append(dups, fmt.Sprintf("%s/%s×%d", k.run, k.step, n))
		}
	}
	sort.Strings(dups)
	require.Empty(t, dups, "steps requested more than once")
	require.Equal(t, runs*steps, total, "step requests")

	// How the work spread over the workers.
	rows, err := db.Query(context.Background(), `SELECT coalesce(worker_id, ''), count(*) FROM step_attempts GROUP BY 1 ORDER BY 1`)
	require.NoError(t, err)
	var spread []string
	workers := 0
	for rows.Next() {
		var w string
		var n int64
		require.NoError(t, rows.Scan(&w, &n))
		spread = append(spread, fmt.Sprintf("%s=%d", w, n))
		workers++
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, workers, 2, "attempts by worker: %v", spread)
	t.Logf("%d runs × %d steps: started in %s, all succeeded after %s; %d step requests; attempts by worker: %s",
		runs, steps, started.Round(time.Millisecond), elapsed.Round(time.Millisecond), total, strings.Join(spread, " "))
}
