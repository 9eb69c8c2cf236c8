package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
)

// txConn is the connection of one transaction. The statements whose answer
// nothing waits for — BEGIN, SAVEPOINT, RELEASE SAVEPOINT, the history's
// insert, a step's start under a lease the transaction holds (see
// [Tx.StartSteps]) — are held back and sent in one round trip with the
// statement that follows them, or with the COMMIT. A run's transitions
// recorded together take a savepoint each (see [Tx.Savepoint]), and sent on
// their own these statements would cost a transition of a few statements
// most of its round trips, each a wait for the database and for the worker.
//
// A held statement that fails, or whose answer is not the one its caller
// went on with, makes the transaction fail: its caller is gone, and what
// came after it cannot stand.
type txConn struct {
	conn *pgxpool.Conn
	// held are the statements not sent yet, in order.
	held []heldStmt
	// sends counts the round trips made, for [txConn.endSavepoint].
	sends int
	// sent reports whether BEGIN has gone to the server: a transaction
	// that sent nothing has nothing to commit or roll back.
	sent bool
	// failed is why the transaction can no longer commit, once a held
	// statement failed.
	failed error
	// appended are the history events the transaction sent or held, for
	// [DB.InTx] to tell which runs they would take past their cap, should
	// the transaction fail for it. A savepoint's stay when it is rolled
	// back: the runs they name are only looked at.
	appended []NewHistoryEvent
}

// heldStmt is a statement held back, and what its answer must be.
type heldStmt struct {
	sql  string
	args []any
	// check reads the statement's row; nil when only its error matters.
	check func(pgx.Row) error
}

// beginTx starts a transaction on a connection of the pool; its BEGIN goes
// with its first statement.
func beginTx(ctx context.Context, pool *pgxpool.Pool) (*txConn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &txConn{conn: conn, held: []heldStmt{{sql: "BEGIN"}}}, nil
}

// hold queues statements without arguments to go with the next one sent.
func (c *txConn) hold(sql ...string) {
	for _, s := range sql {
		c.held = append(c.held, heldStmt{sql: s})
	}
}

// holding returns the generated queries made to hold their statements on
// c instead of sending them. check reads the row of the i-th statement of a
// batch query; statements that return no row need none. Nothing a held
// query returns may be read: its answer comes later, to check.
func (c *txConn) holding(check func(i int, row pgx.Row) error) *dbsqlc.Queries {
	return dbsqlc.New(holder{c: c, check: check})
}

// savepointMark is where a savepoint began, for [txConn.endSavepoint].
type savepointMark struct {
	name  string
	sends int // round trips made before it
	index int // its SAVEPOINT's place among the held statements
}

// beginSavepoint holds the SAVEPOINT that begins a savepoint at depth.
func (c *txConn) beginSavepoint(depth int) savepointMark {
	// The same few names in every transaction, so that their statements
	// are prepared once per connection.
	m := savepointMark{name: "sp_" + strconv.Itoa(depth), sends: c.sends, index: len(c.held)}
	c.hold("SAVEPOINT " + m.name)
	return m
}

// endSavepoint holds what ends the savepoint m: its release, or, when it
// failed, its rollback. What it held and did not send yet is dropped when
// it failed, since its rollback would undo it, and a savepoint that sent
// nothing is not sent at all.
func (c *txConn) endSavepoint(m savepointMark, failed bool) {
	if c.sends == m.sends {
		switch {
		case failed:
			c.held = c.held[:m.index]
		case len(c.held) == m.index+1:
			c.held = c.held[:m.index]
		default:
			c.hold("RELEASE SAVEPOINT " + m.name)
		}
		return
	}
	if failed {
		// Everything held was held after the savepoint's last round trip,
		// inside it.
		c.held = nil
		c.hold("ROLLBACK TO SAVEPOINT "+m.name, "RELEASE SAVEPOINT "+m.name)
		return
	}
	c.hold("RELEASE SAVEPOINT " + m.name)
}

// send sends the held statements and b's in one round trip, and returns
// b's results. Held statements up to the last rollback to a savepoint go
// first, on their own: a batch prepares the statements it has not prepared
// before ahead of running any, which a failed transaction refuses. Only a
// refused transition pays that round trip.
func (c *txConn) send(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if c.failed != nil {
		return pgx.FailedBatchResults(b, c.failed)
	}
	c.sends++
	if last := c.lastRollback(); last >= 0 {
		// A rollback's statements, and what is held before them, have no
		// arguments (see endSavepoint).
		sqls := make([]string, last+2)
		for i, h := range c.held[:last+2] {
			sqls[i] = h.sql
		}
		c.held, c.sent = c.held[last+2:], true
		if _, err := c.conn.Exec(ctx, strings.Join(sqls, "; ")); err != nil {
			c.failed = fmt.Errorf("statement sent ahead: %w", err)
			return pgx.FailedBatchResults(b, c.failed)
		}
	}
	if len(c.held) == 0 {
		return c.conn.SendBatch(ctx, b)
	}
	all := &pgx.Batch{}
	for _, h := range c.held {
		all.Queue(h.sql, h.args...)
	}
	all.QueuedQueries = append(all.QueuedQueries, b.QueuedQueries...)
	held := c.held
	c.held, c.sent = nil, true
	return &heldResults{BatchResults: c.conn.SendBatch(ctx, all), c: c, held: held}
}

// lastRollback is the place of the last ROLLBACK TO SAVEPOINT held, or -1.
func (c *txConn) lastRollback() int {
	for i := len(c.held) - 1; i >= 0; i-- {
		if strings.HasPrefix(c.held[i].sql, "ROLLBACK TO SAVEPOINT ") {
			return i
		}
	}
	return -1
}

// Exec, Query, QueryRow and SendBatch make txConn the connection the
// generated queries run on.

func (c *txConn) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if len(c.held) == 0 && c.failed == nil {
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
	if len(c.held) == 0 && c.failed == nil {
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
	if len(c.held) == 0 && c.failed == nil {
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
	if c.failed != nil {
		return c.failed
	}
	if !c.sent && !c.holdsWork() {
		// Nothing but BEGIN and savepoints in which nothing was sent.
		c.held = nil
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

// holdsWork reports whether a statement with arguments is held: one that
// changes something.
func (c *txConn) holdsWork() bool {
	for _, h := range c.held {
		if len(h.args) > 0 {
			return true
		}
	}
	return false
}

// close rolls back what the transaction sent, unless it committed, and
// returns the connection to the pool; a connection that cannot be rolled
// back is closed instead.
func (c *txConn) close(ctx context.Context) {
	defer c.conn.Release()
	c.held = nil
	if !c.sent {
		return
	}
	if _, err := c.conn.Exec(ctx, "ROLLBACK"); err != nil {
		_ = c.conn.Conn().Close(ctx)
	}
}

// heldResults are the results of a batch that began with held statements:
// theirs are read and checked first, and their failure is the batch's and
// the transaction's.
type heldResults struct {
	pgx.BatchResults
	c    *txConn
	held []heldStmt
	err  error
}

func (r *heldResults) readHeld() error {
	for ; len(r.held) > 0 && r.err == nil; r.held = r.held[1:] {
		h := r.held[0]
		var err error
		if h.check != nil {
			err = h.check(r.BatchResults.QueryRow())
		} else {
			_, err = r.BatchResults.Exec()
		}
		if err != nil {
			r.err = fmt.Errorf("statement sent ahead: %w", err)
			r.c.failed = r.err
		}
	}
	return r.err
}

func (r *heldResults) Exec() (pgconn.CommandTag, error) {
	if err := r.readHeld(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *heldResults) Query() (pgx.Rows, error) {
	if err := r.readHeld(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *heldResults) QueryRow() pgx.Row {
	if err := r.readHeld(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

func (r *heldResults) Close() error {
	err := r.readHeld()
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

// holder is the connection of [txConn.holding]: it holds the statements of
// the generated queries sent through it.
type holder struct {
	c     *txConn
	check func(i int, row pgx.Row) error
}

// errHeld is what reading the answer of a held statement says.
var errHeld = errors.New("the statement is held: its answer comes later")

func (h holder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	h.c.held = append(h.c.held, heldStmt{sql: sql, args: args})
	return pgconn.CommandTag{}, nil
}

func (h holder) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errHeld
}

func (h holder) QueryRow(context.Context, string, ...any) pgx.Row {
	return errRow{errHeld}
}

func (h holder) SendBatch(_ context.Context, b *pgx.Batch) pgx.BatchResults {
	for i, q := range b.QueuedQueries {
		s := heldStmt{sql: q.SQL, args: q.Arguments}
		if h.check != nil {
			s.check = func(row pgx.Row) error { return h.check(i, row) }
		}
		h.c.held = append(h.c.held, s)
	}
	return pgx.FailedBatchResults(b, errHeld)
}
