package orchestrator

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/postgres/pgtest"
)

// retentionFixture inserts n finished runs of ten call steps each, as the
// engine leaves them — a run, ten step executions and attempts, and 23
// history events — that finished two hours ago, straight in SQL: the
// engine would take many minutes to make them.
const retentionFixture = `
INSERT INTO workflows (name, latest_version) VALUES ('bench', 1);
INSERT INTO workflow_versions (workflow_name, version, definition, content_hash)
VALUES ('bench', 1, '{"name": "bench", "steps": [{"name": "s1", "type": "call", "url": "http://127.0.0.1:1/s"}]}', '\x00');
INSERT INTO runs (id, workflow_name, workflow_version, status, input, context, output,
                  created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(), 'bench', 1, 'succeeded', '{"order": 42}', '{"looked_up": true}', '{"message": "done"}',
       now() - interval '3 hours', now() - interval '2 hours', now() - interval '3 hours',
       now() - interval '2 hours' - i * interval '1 millisecond'
FROM generate_series(1, $1::integer) AS i;
INSERT INTO step_executions (id, run_id, step_key, step_name, step_type, status, attempt, webhook_id,
                             input, output, created_at, started_at, finished_at)
SELECT gen_random_uuid(), r.id, 's' || s, 's' || s, 'call', 'succeeded', 1, 'msg_' || r.id,
       '{"order": 42}', '{"ok": true}', r.created_at, r.started_at, r.finished_at
FROM runs r, generate_series(1, 10) AS s;
INSERT INTO step_attempts (step_execution_id, attempt, run_id, status, worker_id, http_status, started_at, finished_at)
SELECT e.id, 1, e.run_id, 'succeeded', 'bench', 200, e.started_at, e.finished_at FROM step_executions e;
INSERT INTO history_events (run_id, type, step_key, attempt, data)
SELECT r.id,
       CASE WHEN h = 1 THEN 'run_created' WHEN h = 2 THEN 'run_started' WHEN h = 23 THEN 'run_succeeded'
            WHEN h % 2 = 1 THEN 'step_started' ELSE 'step_succeeded' END,
       CASE WHEN h BETWEEN 3 AND 22 THEN 's' || ((h - 1) / 2) END,
       CASE WHEN h BETWEEN 3 AND 22 THEN 1 END,
       CASE WHEN h BETWEEN 3 AND 22 AND h % 2 = 0 THEN '{"http_status": 200, "duration_ms": 3}'::jsonb END
FROM runs r, generate_series(1, 23) AS h;
ANALYZE;
`

// BenchmarkRetention measures how fast workers delete expired runs: it
// inserts DURABLE_BENCH_RETENTION_RUNS (100,000 by default) finished runs
// of ten steps, starts real workers (their whole loop: retention, claims,
// schedules), and times until every run is gone. The rate includes the
// pauses between batches (as long as each batch took), which keep
// retention from crowding out the database's other work.
func BenchmarkRetention(b *testing.B) {
	n := 100_000
	if v := os.Getenv("DURABLE_BENCH_RETENTION_RUNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("DURABLE_BENCH_RETENTION_RUNS: %v", err)
		}
	}
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			for range b.N {
				benchmarkRetention(b, n, workers)
			}
		})
	}
}

func benchmarkRetention(b *testing.B, n, workers int) {
	b.StopTimer()
	ctx := context.Background()
	url := pgtest.URL(b)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	began := time.Now()
	// The simple protocol runs the whole fixture as one script.
	if _, err := conn.Exec(ctx, retentionFixture, pgx.QueryExecModeSimpleProtocol, n); err != nil {
		b.Fatalf("insert the fixture: %v", err)
	}
	b.Logf("inserted %d finished runs of 10 steps in %s", n, time.Since(began).Round(time.Second))
	count := func() int {
		var left int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM runs`).Scan(&left); err != nil {
			b.Fatal(err)
		}
		return left
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	run, stop := context.WithCancel(ctx)
	done := make(chan struct{}, workers)
	b.StartTimer()
	began = time.Now()
	for i := range workers {
		db, err := postgres.Open(ctx, url, 4)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		w := NewWorker(db, DefaultLimits(), logger, WorkerConfig{Retention: time.Hour}, WithWorkerID("bench-"+strconv.Itoa(i)))
		go func() { _ = w.Run(run); done <- struct{}{} }()
	}
	for count() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	stop()
	for range workers {
		<-done
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "runs/s")
	b.ReportMetric(elapsed.Seconds()/float64((n+retentionBatch-1)/retentionBatch)*1000*float64(workers), "ms/batch+pause")
}
