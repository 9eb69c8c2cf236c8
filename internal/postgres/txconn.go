package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// txConn is the connection of one transaction. The statements whose answer
// nothing waits for — BEGIN, SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO
// SAVEPOINT — are held back and sent in one round trip with the statement
// that follows them, or with the COMMIT. A run's transitions recorded
// together take a savepoint each (see [Tx.Savepoint]), and sent on their
// own these would cost a transition of a few statements half its round
// trips. An error of a held-back statement is the error of the statement
// it went with.
type txConn struct {
	conn *pgxpool.Conn
	// held are the statements not sent yet, in order.
	held []string
	// sent reports whether BEGIN has gone to the server: a transaction
	// that sent nothing has nothing to commit or roll back.
	sent bool
	// rollingBack reports whether a ROLLBACK TO SAVEPOINT is held: the
	// transaction may have failed, and then nothing that follows can be
	// prepared until it is sent (see [txConn.send]).
	rollingBack bool
}

// beginTx starts a transaction on a connection of the pool; its BEGIN goes
// with its first statement.
func beginTx(ctx context.Context, pool *pgxpool.Pool) (*txConn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &txConn{conn: conn, held: []string{"BEGIN"}}, nil
}

// hold queues statements to go with the next one sent.
func (c *txConn) hold(sql ...string) {
	c.held = append(c.held, sql...)
}

// holdRollback queues the statements that roll a savepoint back and end it.
func (c *txConn) holdRollback(name string) {
	c.hold("ROLLBACK TO SAVEPOINT "+name, "RELEASE SAVEPOINT "+name)
	c.rollingBack = true
}

// unhold takes sql back if it is the last statement held, and reports
// whether it was: a savepoint in which nothing was sent need not be sent.
func (c *txConn) unhold(sql string) bool {
	if n := len(c.held); n > 0 && c.held[n-1] == sql {
		c.held = c.held[:n-1]
		return true
	}
	return false
}

// savepointName names the savepoint at depth (1 for the outermost): the
// same few names in every transaction, so that their statements are
// prepared once per connection.
func savepointName(depth int) string {
	return "sp_" + strconv.Itoa(depth)
}

// send sends the held statements and b's in one round trip, and returns
// b's results. Held statements that roll a savepoint back go first, on
// their own: a batch prepares the statements it has not prepared before
// ahead of running any, which a failed transaction refuses. Only a refused
// transition pays that round trip.
func (c *txConn) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if c.rollingBack {
		held := strings.Join(c.held, "; ")
		c.held, c.rollingBack = nil, false
		if _, err := c.conn.Exec(ctx, held); err != nil {
			return pgx.FailedBatchResults(b, fmt.Errorf("statement sent ahead: %w", err))
		}
	}
	if len(c.held) == 0 {
		return c.conn.SendBatch(ctx, b)
	}
	all := &pgx.Batch{}
	for _, sql := range c.held {
		all.Queue(sql)
	}
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	skip := len(c.held)
	c.held, c.sent = nil, true
	return &heldResults{BatchResults: c.conn.SendBatch(ctx, all), skip: skip}
}

// Exec, Query, QueryRow and SendBatch make txConn the connection the
// generated queries run on.

func (c *txConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(c.held) == 0 {
		return c.conn.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := c.send(ctx, b)
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (c *txConn) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if len(c.held) == 0 {
		return c.conn.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := c.send(ctx, b)
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (c *txConn) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if len(c.held) == 0 {
		return c.conn.QueryRow(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := c.send(ctx, b)
	return batchRow{row: br.QueryRow(), br: br}
}

func (c *txConn) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return c.send(ctx, b)
}

// commit sends what is held and COMMIT.
func (c *txConn) commit(ctx context.Context) error {
	if !c.sent {
		// Nothing but BEGIN and savepoints in which nothing was sent.
		c.held, c.rollingBack = nil, false
		return nil
	}
	tag, err := c.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	c.sent = false
	if tag.String() == "ROLLBACK" {
		// COMMIT in a failed transaction rolls it back and says so.
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// close rolls back what the transaction sent, unless it committed, and
// returns the connection to the pool; a connection that cannot be rolled
// back is closed instead.
func (c *txConn) close(ctx context.Context) {
	defer c.conn.Release()
	c.held, c.rollingBack = nil, false
	if !c.sent {
		return
	}
	if _, err := c.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = c.conn.Conn().Close(ctx)
	}
}

// heldResults are the results of a batch that began with held statements:
// theirs are read first, and their error is the batch's.
type heldResults struct {
	pgx.BatchResults
	skip int
	err  error
}

func (r *heldResults) skipHeld() error {
	for ; r.skip > 0 && r.err == nil; r.skip-- {
		if _, err := r.BatchResults.Exec(); err != nil {
			r.err = fmt.Errorf("statement sent ahead: %w", err)
		}
	}
	return r.err
}

func (r *heldResults) Exec() (pgconn.CommandTag, error) {
	if err := r.skipHeld(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *heldResults) Query() (pgx.Rows, error) {
	if err := r.skipHeld(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *heldResults) QueryRow() pgx.Row {
	if err := r.skipHeld(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

func (r *heldResults) Close() error {
	err := r.skipHeld()
	if cerr := r.BatchResults.Close(); err == nil {
		err = cerr
	}
	return err
}

// errRow is a row that could not be read.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the one row of a batch of one query: reading it ends the
// batch.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// batchRows are the rows of a batch of one query: closing them ends the
// batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if err := r.br.Close(); r.err == nil {
		r.err = err
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}
