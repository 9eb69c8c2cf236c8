package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/workflow"
)

type flowBundle struct {
	db   *postgres.DB
	conn *pgx.Conn
}

func setupFlow(t *testing.T) flowBundle {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := postgres.Open(ctx, url, 2)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	_, err = conn.Exec(ctx, `
		INSERT INTO workflows (name, latest_version) VALUES ('w', 1);
		INSERT INTO workflow_versions (workflow_name, version, definition, content_hash) VALUES ('w', 1, '{}', '\x00')`)
	require.NoError(t, err)
	return flowBundle{db: db, conn: conn}
}

// newRun inserts a run of w and enters it under limits; it reports
// whether the run got its places.
func (b flowBundle) newRun(t *testing.T, priority int, limits ...postgres.FlowLimit) (uuid.UUID, bool) {
	t.Helper()
	id := uuid.Must(uuid.NewV7())
	var entered bool
	require.NoError(t, b.db.InTx(context.Background(), func(tx *postgres.Tx) error {
		if _, _, err := tx.InsertRun(context.Background(), postgres.NewRun{ID: id, Workflow: "w", Version: 1, Input: []byte(`{}`), Priority: priority}); err != nil {
			return err
		}
		var err error
		entered, err = tx.EnterRun(context.Background(), id, priority, limits)
		return err
	}))
	return id, entered
}

func (b flowBundle) finish(t *testing.T, id uuid.UUID) {
	t.Helper()
	require.NoError(t, b.db.InTx(context.Background(), func(tx *postgres.Tx) error {
		_, ok, err := tx.FinishRun(context.Background(), id, workflow.RunSucceeded, nil, nil)
		require.True(t, ok)
		return err
	}))
}

func (b flowBundle) status(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var s string
	require.NoError(t, b.conn.QueryRow(context.Background(), `SELECT status FROM runs WHERE id = $1`, id).Scan(&s))
	return s
}

// Runs queued behind a full key are admitted one per place given back,
// best priority first and first in first out within a priority; a run
// queued under two keys waits for both.
func TestFlowQueueOrder(t *testing.T) {
	t.Parallel()
	b := setupFlow(t)
	k := postgres.FlowLimit{Key: "run:w#0=k", Limit: 1}
	other := postgres.FlowLimit{Key: "run:w#1=o", Limit: 1}
	holder, ok := b.newRun(t, 50, k)
	require.True(t, ok)
	low, ok := b.newRun(t, 10, k)
	require.False(t, ok)
	first, _ := b.newRun(t, 50, k)
	second, _ := b.newRun(t, 50, k)
	high, _ := b.newRun(t, 90, k)
	require.Equal(t, "queued", b.status(t, low))
	// The other key is held, so the run under both keys waits for it.
	otherHolder, ok := b.newRun(t, 50, other)
	require.True(t, ok)
	both, ok := b.newRun(t, 100, k, other)
	require.False(t, ok)

	var order []uuid.UUID
	prev := holder
	for range 4 {
		b.finish(t, prev)
		rows, err := b.conn.Query(context.Background(), `SELECT id FROM runs WHERE status = 'pending' AND id <> $1`, otherHolder)
		require.NoError(t, err)
		admitted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		require.NoError(t, err)
		require.Len(t, admitted, 1, "one place, one run admitted")
		order = append(order, admitted[0])
		prev = admitted[0]
		_, err = b.conn.Exec(context.Background(), `UPDATE runs SET status = 'running' WHERE id = $1`, prev)
		require.NoError(t, err)
	}
	require.Equal(t, []uuid.UUID{high, first, second, low}, order)
	require.Equal(t, "queued", b.status(t, both))
	b.finish(t, prev)
	require.Equal(t, "queued", b.status(t, both), "its other key is still full")
	b.finish(t, otherHolder)
	require.Equal(t, "pending", b.status(t, both))
	var due time.Duration
	require.NoError(t, b.conn.QueryRow(context.Background(),
		`SELECT (EXTRACT(EPOCH FROM now() - visible_at) * 1000)::bigint * interval '1 millisecond' FROM work_items WHERE run_id = $1`, both).Scan(&due))
	require.InDelta(t, float64(5*time.Second), float64(due), float64(time.Second), "priority 100 is due 5 s early")
}

// A bucket gives limit tokens at once, then one every period/limit; a
// pause empties it until its end.
func TestFlowTokenBucket(t *testing.T) {
	t.Parallel()
	b := setupFlow(t)
	ctx := context.Background()
	take := func(key string) time.Duration {
		var wait time.Duration
		require.NoError(t, b.db.InTx(ctx, func(tx *postgres.Tx) (err error) {
			wait, err = tx.TakeToken(ctx, key, 2, time.Second)
			return err
		}))
		return wait
	}
	require.Zero(t, take("a"))
	require.Zero(t, take("a"))
	w := take("a")
	require.InDelta(t, float64(500*time.Millisecond), float64(w), float64(100*time.Millisecond), "the next token in half a period")
	require.Zero(t, take("b"), "another key has its own bucket")
	time.Sleep(w + 20*time.Millisecond)
	require.Zero(t, take("a"))

	require.NoError(t, b.db.InTx(ctx, func(tx *postgres.Tx) error { return tx.PauseBucket(ctx, "b", 2*time.Second) }))
	w = take("b")
	require.InDelta(t, float64(2*time.Second), float64(w), float64(200*time.Millisecond))
}

// A step's places are limited across holders and expire with their lease.
func TestFlowStepPlaces(t *testing.T) {
	t.Parallel()
	b := setupFlow(t)
	ctx := context.Background()
	run, _ := b.newRun(t, 50)
	limits := []postgres.FlowLimit{{Key: "step:w/s#0=k", Limit: 2}}
	enter := func(holder uuid.UUID, lease time.Duration) string {
		var full string
		require.NoError(t, b.db.InTx(ctx, func(tx *postgres.Tx) (err error) {
			full, err = tx.EnterStep(ctx, holder, run, limits, lease)
			return err
		}))
		return full
	}
	a, c, d := uuid.New(), uuid.New(), uuid.New()
	require.Empty(t, enter(a, time.Minute))
	require.Empty(t, enter(c, 300*time.Millisecond))
	require.Equal(t, "step:w/s#0=k", enter(d, time.Minute))
	time.Sleep(400 * time.Millisecond) // c's lease ends: its worker died
	require.Empty(t, enter(d, time.Minute))
	require.NoError(t, b.db.InTx(ctx, func(tx *postgres.Tx) error { return tx.LeaveStep(ctx, a) }))
	require.Empty(t, enter(c, time.Minute))
}
