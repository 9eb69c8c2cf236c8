// Package postgres is Durable's only door to PostgreSQL: it owns the pgx
// pool, the migrations and the sqlc-generated queries, and it translates
// database rows into domain types and database errors into [fault] errors.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// history caps the runs' histories (see [DB.CapHistory]).
	history historyCap
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
	tx pgx.Tx
	// history buffers the events appended in the transaction; they are
	// written in one statement just before it commits.
	history []NewHistoryEvent
	// committed are called once the transaction has committed.
	committed []func()
	// counts holds, for each run whose history the transaction wrote, the
	// run's history_count after the last write; ends counts the events it
	// appended that end a run. Both are held against the history cap before
	// the transaction commits.
	counts map[uuid.UUID]int
	ends   map[uuid.UUID]int
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
// A transaction that would take a run's history past its cap (see
// [DB.CapHistory]) is rolled back instead; the run is ended, in a
// transaction of its own, and fn is called again, once, in a new
// transaction, where it finds the run ended. fn may thus be called twice.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	err := db.inTx(ctx, true, fn)
	var full *HistoryFullError
	if !errors.As(err, &full) || db.history.end == nil {
		return err
	}
	for _, id := range full.Runs {
		if err := db.inTx(ctx, false, func(tx *Tx) error { return db.history.end(ctx, tx, id) }); err != nil {
			return fmt.Errorf("end run %s at its history cap: %w", id, err)
		}
	}
	return db.inTx(ctx, true, fn)
}

// inTx runs fn in a transaction, holding the runs' histories to their cap
// when capped.
func (db *DB) inTx(ctx context.Context, capped bool, fn func(tx *Tx) error) error {
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", translate(err))
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	tx := &Tx{queries: queries{q: dbsqlc.New(ptx)}, tx: ptx}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.flushHistory(ctx); err != nil {
		return err
	}
	if capped {
		if full := tx.overCap(db.history.max); full != nil {
			return full
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", translate(err))
	}
	for _, f := range tx.committed {
		f()
	}
	return nil
}

// historyCap is the most events a run's history may hold, and what ends a
// run whose next transition would pass it.
type historyCap struct {
	max int // 0: no cap
	end func(ctx context.Context, tx *Tx, runID uuid.UUID) error
}

// CapHistory bounds the events of each run's history to max, the event that
// ends a run included: a transaction may fill a run's history up to max-1
// events, the last being kept for the end. end ends a run whose next
// transaction would pass the cap, in a transaction of its own, which writes
// past the cap what it must (the end of the run, and of runs it ends in
// turn): see [DB.InTx]. The statements that append history count what they
// append in runs.history_count; the events of steps inside foreach items
// are not counted.
func (db *DB) CapHistory(max int, end func(ctx context.Context, tx *Tx, runID uuid.UUID) error) {
	db.history = historyCap{max: max, end: end}
}

// HistoryFullError says that a transaction would have taken runs' histories
// past their cap: nothing of it was committed.
type HistoryFullError struct {
	Runs []uuid.UUID
	Max  int
}

func (e *HistoryFullError) Error() string {
	return fmt.Sprintf("the history of run %s would pass its cap of %d events", e.Runs[0], e.Max)
}

// Unwrap makes the error a conflict: the run's state forbids the change.
func (e *HistoryFullError) Unwrap() error { return fault.New(fault.Conflict, "%s", e.Error()) }

// overCap returns what tells that the transaction's writes would take runs'
// histories past max (whose last event is kept for the event that ends the
// run), or nil.
func (tx *Tx) overCap(max int) *HistoryFullError {
	if max <= 0 {
		return nil
	}
	var full []uuid.UUID
	for id, n := range tx.counts {
		if n-tx.ends[id] > max-1 {
			full = append(full, id)
		}
	}
	if full == nil {
		return nil
	}
	slices.SortFunc(full, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return &HistoryFullError{Runs: full, Max: max}
}

// counted notes a run's history_count after one of the transaction's
// writes.
func (tx *Tx) counted(runID uuid.UUID, count int) {
	if tx.counts == nil {
		tx.counts = map[uuid.UUID]int{}
	}
	tx.counts[runID] = count
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
// it did is rolled back and the transaction goes on.
func (tx *Tx) Savepoint(ctx context.Context, fn func(tx *Tx) error) error {
	sp, err := tx.tx.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin savepoint: %w", translate(err))
	}
	inner := &Tx{queries: queries{q: dbsqlc.New(sp)}, tx: sp}
	if err := fn(inner); err != nil {
		if rerr := sp.Rollback(ctx); rerr != nil {
			return fmt.Errorf("%w (and rolling back the savepoint: %v)", err, rerr)
		}
		return err
	}
	if err := sp.Commit(ctx); err != nil {
		return fmt.Errorf("release savepoint: %w", translate(err))
	}
	tx.history = append(tx.history, inner.history...)
	tx.committed = append(tx.committed, inner.committed...)
	// The savepoint's writes came after the transaction's so far.
	for id, n := range inner.counts {
		tx.counted(id, n)
	}
	for id, n := range inner.ends {
		if tx.ends == nil {
			tx.ends = map[uuid.UUID]int{}
		}
		tx.ends[id] += n
	}
	return nil
}

// Listen calls notify whenever a notification arrives on channel, until
// ctx ends. It holds one connection of the pool, reconnecting after
// failures; notifications sent while it reconnects are lost, which is why
// workers also poll.
func (db *DB) Listen(ctx context.Context, channel string, notify func(), logger *slog.Logger) {
	for ctx.Err() == nil {
		err := db.listen(ctx, channel, notify)
		if ctx.Err() != nil {
			return
		}
		logger.WarnContext(ctx, "listening for work notifications failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listen(ctx context.Context, channel string, notify func()) error {
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
	// Work may have been queued while no connection listened.
	notify()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		notify()
	}
}
