// Package postgres is Durable's only door to PostgreSQL: it owns the pgx
// pool, the migrations and the sqlc-generated queries, and it translates
// database rows into domain types and database errors into [fault] errors.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
	"github.com/durablehq/durable/internal/workflow"
)

// DB is a pool of connections to Durable's database. Its read methods run
// outside any transaction; state changes go through [DB.InTx].
type DB struct {
	queries
	pool *pgxpool.Pool
	// steps and txs group the transitions of many callers into shared
	// commits (see groupcommit.go).
	steps batcher[*groupRequest]
	txs   batcher[*txRequest]
	// endAtHistoryCap ends a run whose next transition would take its
	// history past its cap (see [DB.OnHistoryCap]).
	endAtHistoryCap func(ctx context.Context, tx *Tx, runID uuid.UUID) error
}

// queries holds the methods shared by [DB] and [Tx]; built from a pool they
// run on their own, built from a transaction they run inside it.
type queries struct {
	q *dbsqlc.Queries
}

// Tx is one database transaction. Every state transition of a run is made in
// exactly one Tx.
type Tx struct {
	queries
	conn *txConn
	// depth counts the savepoints the Tx is in (see [Tx.Savepoint]).
	depth int
	// history buffers the events appended in the transaction; they are
	// written in one statement just before it commits.
	history []NewHistoryEvent
	// committed are called once the transaction has committed.
	committed []func()
	// leases are the work items whose leases the transaction checked
	// under the item's row lock, by id, and has not given up since: until
	// it ends, no other transaction can take them.
	leases map[int64]uuid.UUID
}

// lockedLease notes that w's lease was checked under its row lock.
func (tx *Tx) lockedLease(w WorkItem) {
	if tx.leases == nil {
		tx.leases = map[int64]uuid.UUID{}
	}
	tx.leases[w.ID] = w.LeaseToken
}

// holdsLease reports whether the transaction holds w's lease under its row
// lock.
func (tx *Tx) holdsLease(w WorkItem) bool {
	token, ok := tx.leases[w.ID]
	return ok && token == w.LeaseToken
}

// Open connects to the database at url with a pool of at most maxConns
// connections (0: pgx's default, or the URL's pool_max_conns). It does not
// create the database or apply migrations: see [EnsureDatabase] and
// [DB.Migrate].
func Open(ctx context.Context, url string, maxConns int) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 && !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return &DB{queries: queries{q: dbsqlc.New(pool)}, pool: pool}, nil
}

// Close closes every connection of the pool.
func (db *DB) Close() {
	db.steps.stop()
	db.txs.stop()
	db.pool.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction and commits it if fn returns nil; otherwise
// it rolls back and returns fn's error. fn must use only the Tx it is given,
// never the DB, or its queries would run outside the transaction.
//
// A transaction that would take a run's history past its cap fails (the
// runs_history_cap constraint refuses it). When the DB knows how to end
// such a run ([DB.OnHistoryCap]), InTx ends it, in a transaction of its
// own, and calls fn again, once, in a new transaction, where fn finds the
// run ended: fn may be called twice.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var appended []NewHistoryEvent
	err := db.inTx(ctx, fn, &appended)
	if !errors.Is(err, errHistoryCap) || db.endAtHistoryCap == nil {
		return err
	}
	full, cerr := db.runsPastHistoryCap(ctx, appended)
	if cerr != nil || len(full) == 0 {
		return errors.Join(err, cerr)
	}
	for _, id := range full {
		if err := db.inTx(ctx, func(tx *Tx) error { return db.endAtHistoryCap(ctx, tx, id) }, nil); err != nil {
			return fmt.Errorf("end run %s at its history cap: %w", id, err)
		}
	}
	return db.inTx(ctx, fn, nil)
}

// OnHistoryCap has [DB.InTx] end with end, in a transaction of its own, a
// run whose next transition would take its history past its cap: a run
// holds at most history_cap events (see [NewRun]), and every transition but
// the one that ends it must leave room for the event that does. end writes
// that event, and those of the runs it ends in turn.
func (db *DB) OnHistoryCap(end func(ctx context.Context, tx *Tx, runID uuid.UUID) error) {
	db.endAtHistoryCap = end
}

// errHistoryCap is what a statement that would take a run's history past
// its cap fails with.
var errHistoryCap = fault.New(fault.Conflict, "the run's history is at its cap")

// runsPastHistoryCap tells which of the runs that events were to be
// appended to their history would pass its cap with them, by the
// database's state after their transaction rolled back.
func (db *DB) runsPastHistoryCap(ctx context.Context, events []NewHistoryEvent) ([]uuid.UUID, error) {
	p := dbsqlc.RunListPastHistoryCapParams{
		RunIds: make([]uuid.UUID, len(events)), StepKeys: make([]string, len(events)), Ends: make([]bool, len(events)),
	}
	for i, e := range events {
		p.RunIds[i], p.StepKeys[i], p.Ends[i] = e.RunID, e.StepKey, workflow.EndsRun(e.Type)
	}
	ids, err := db.q.RunListPastHistoryCap(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("find runs past their history cap: %w", translate(err))
	}
	return ids, nil
}

// inTx runs fn in a transaction, and leaves in appended (when not nil) the
// history events it sent or held, whether it committed or not.
func (db *DB) inTx(ctx context.Context, fn func(tx *Tx) error, appended *[]NewHistoryEvent) error {
	conn, err := beginTx(ctx, db.pool)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", translate(err))
	}
	defer conn.close(context.WithoutCancel(ctx))
	if appended != nil {
		defer func() { *appended = conn.appended }()
	}
	tx := &Tx{queries: queries{q: dbsqlc.New(conn)}, conn: conn}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushHistory(ctx); err != nil {
		return err
	}
	if err := conn.commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", translate(err))
	}
	for _, f := range tx.committed {
		f()
	}
	return nil
}

// AfterCommit has f called once the transaction has committed, and never
// if it rolls back: what is told of a transition (metrics, logs) is what
// was recorded. f must be quick; it runs on the committing goroutine.
func (tx *Tx) AfterCommit(f func()) {
	tx.committed = append(tx.committed, f)
}

// PostgreSQL error codes Durable gives a meaning to.
const (
	codeUniqueViolation          = "23505"
	codeForeignKeyViolation      = "23503"
	codeCheckViolation           = "23514"
	codeUntranslatableCharacter  = "22P05"
	codeCharacterNotInRepertoire = "22021"
	codeProgramLimitExceeded     = "54000"
	codeNumericOutOfRange        = "22003"
	codeDeadlockDetected         = "40P01"
	codeSerializationFailure     = "40001"
)

// hasCode reports whether err is a PostgreSQL error with one of codes.
func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

// translate turns the database errors a client can cause into [fault]
// errors, marks those that say the database cannot be reached
// [fault.Unavailable] (keeping the cause for logs), and leaves every other
// error as it is (internal).
func translate(err error) error {
	if unreachable(err) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case codeUntranslatableCharacter:
		// jsonb cannot hold \u0000.
		return &fault.Error{Kind: fault.Invalid, Message: "the data contains a NUL character (\\u0000), which Durable cannot store"}
	case codeCharacterNotInRepertoire:
		return &fault.Error{Kind: fault.Invalid, Message: "the data holds a NUL byte or text that is not valid UTF-8"}
	case codeNumericOutOfRange:
		return &fault.Error{Kind: fault.Invalid, Message: "the data holds a number outside the range PostgreSQL can store"}
	case codeProgramLimitExceeded:
		return &fault.Error{Kind: fault.TooLarge, Message: "the data exceeds a database limit"}
	case codeUniqueViolation:
		return &fault.Error{Kind: fault.Conflict, Message: "the resource already exists"}
	case codeForeignKeyViolation:
		return &fault.Error{Kind: fault.NotFound, Message: "a referenced resource does not exist"}
	case codeCheckViolation:
		if pgErr.ConstraintName == "runs_history_cap" {
			return errHistoryCap
		}
		return &fault.Error{Kind: fault.Invalid, Message: "the data violates a constraint"}
	}
	return err
}

var errUnavailable = fault.New(fault.Unavailable, "the database is unavailable; try again later")

// unreachable reports whether err says that the database could not be
// reached or went away: a connection refused, reset or timed out, a server
// shutting down or starting up, or out of connection slots. Whatever the
// request was, the same request may succeed once the database is back.
func unreachable(err error) bool {
	if errors.Is(err, errUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// Already marked, or the caller's own deadline (which is also a
		// net.Error).
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || // connection exception
			// admin or crash shutdown, cannot connect now, too many connections
			hasCode(err, "57P01", "57P02", "57P03", "53300")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	// SafeToRetry: nothing reached the server, as when a pooled connection
	// turns out to have been closed under it.
	return pgconn.SafeToRetry(err) || errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// notFound translates a missing row into a NotFound fault with the given
// message, and any other error as [translate] does.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.New(fault.NotFound, format, args...)
	}
	return translate(err)
}

// notFoundOK turns a missing row into (nil error): the caller treats it as
// "the conditional update matched nothing".
func notFoundOK(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, translate(err))
}

// Savepoint runs fn in a savepoint of the transaction: when fn fails, what
// it did is rolled back and the transaction goes on. The savepoint's
// statements go with the statements around them (see [txConn]): a failure
// to roll back is the error of the transaction's next statement.
func (tx *Tx) Savepoint(ctx context.Context, fn func(tx *Tx) error) error {
	m := tx.conn.beginSavepoint(tx.depth + 1)
	inner := &Tx{queries: tx.queries, conn: tx.conn, depth: tx.depth + 1, leases: maps.Clone(tx.leases)}
	err := fn(inner)
	tx.conn.endSavepoint(m, err != nil)
	if err != nil {
		return err
	}
	tx.history = append(tx.history, inner.history...)
	tx.committed = append(tx.committed, inner.committed...)
	tx.leases = inner.leases
	return nil
}

// Listen calls notify whenever a notification arrives on channel, until
// ctx ends. It holds one connection of the pool, reconnecting after
// failures; notifications sent while it reconnects are lost, which is why
// workers also poll.
func (db *DB) Listen(ctx context.Context, channel string, notify func(), logger *slog.Logger) {
	db.ListenPayloads(ctx, channel, func(string) { notify() }, logger)
}

// ListenPayloads is [DB.Listen] handing notify each notification's
// payload, and "" once listening begins (again): notifications may have
// been missed before.
func (db *DB) ListenPayloads(ctx context.Context, channel string, notify func(payload string), logger *slog.Logger) {
	for ctx.Err() == nil {
		err := db.listen(ctx, channel, notify)
		if ctx.Err() != nil {
			return
		}
		logger.WarnContext(ctx, "listening for notifications failed; retrying", "channel", channel, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listen(ctx context.Context, channel string, notify func(string)) error {
	pooled, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	// A connection that has listened must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Notifications may have been sent while no connection listened.
	notify("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		notify(n.Payload)
	}
}
