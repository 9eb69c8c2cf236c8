package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WorkDue returns how many work items are due and unclaimed, counting no
// further than max, and how long the oldest item has been due.
func (db *DB) WorkDue(ctx context.Context, max int) (int64, time.Duration, error) {
	row, err := db.q.WorkDue(ctx, int32(max))
	if err != nil {
		return 0, 0, fmt.Errorf("read due work: %w", translate(err))
	}
	return row.Due, time.Duration(row.LagSeconds * float64(time.Second)), nil
}

// Stat returns the statistics of the connection pool, for metrics.
func (db *DB) Stat() *pgxpool.Stat { return db.pool.Stat() }
