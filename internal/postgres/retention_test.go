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
)

// TestDeleteOldScheduleFires keeps the newest firings of each schedule and
// the one buffer_one holds back, deleting the others oldest first, a batch
// at a time.
func TestDeleteOldScheduleFires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := postgres.Open(ctx, url, 2)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })

	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	busy, quiet := uuid.New(), uuid.New()
	held := base.Add(2 * time.Minute) // an old firing buffer_one holds back
	_, err = conn.Exec(ctx, `
		INSERT INTO workflows (name, latest_version) VALUES ('w', 1);
		INSERT INTO schedules (id, name, workflow_name, cron, timezone, overlap_policy, buffered_fire_time)
		VALUES ($1, 'busy', 'w', '@every 1m', 'UTC', 'buffer_one', $3), ($2, 'quiet', 'w', '@every 1m', 'UTC', 'allow', NULL);
		INSERT INTO schedule_fires (schedule_id, fire_time, outcome)
		SELECT $1, $4::timestamptz + i * interval '1 minute', 'started' FROM generate_series(0, 29) AS i;
		INSERT INTO schedule_fires (schedule_id, fire_time, outcome)
		SELECT $2, $4::timestamptz + i * interval '1 minute', 'started' FROM generate_series(0, 4) AS i`,
		pgx.QueryExecModeSimpleProtocol, busy, quiet, held, base)
	require.NoError(t, err)

	// 30 firings, 10 kept: 19 go (the held one stays), 7 at a time.
	var batches []int
	for {
		n, err := db.DeleteOldScheduleFires(ctx, 10, 7)
		require.NoError(t, err)
		batches = append(batches, n)
		if n < 7 {
			break
		}
	}
	require.Equal(t, []int{7, 7, 5}, batches)
	rows, err := conn.Query(ctx, `SELECT fire_time FROM schedule_fires WHERE schedule_id = $1 ORDER BY fire_time`, busy)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	require.Len(t, left, 11)
	require.True(t, left[0].Equal(held), "the firing held back stays: %v", left[0])
	for i, f := range left[1:] {
		require.True(t, f.Equal(base.Add(time.Duration(20+i)*time.Minute)), "the newest 10 stay: %v", left)
	}
	var quietLeft int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM schedule_fires WHERE schedule_id = $1`, quiet).Scan(&quietLeft))
	require.Equal(t, 5, quietLeft, "a schedule with fewer firings keeps them all")
}
