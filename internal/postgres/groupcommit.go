package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
)

// Group commit: most of a loaded worker's transitions are steps that
// succeeded and go on to their run's next step, each one statement. Each
// used to be its own transaction, and PostgreSQL's work per commit (above
// all the WAL flush) was most of its CPU. A batcher gathers the
// transitions that arrive while its previous batch is being committed and
// sends them together: one round trip and one commit for all. Batches form
// by themselves — a transition that arrives when nothing is in flight is
// sent at once, alone, with no timer to wait for — and grow with the load.
//
// Each statement is fenced by its own lease token and attempt and is
// written to change nothing and raise no error when refused, so one
// refused transition does not undo the others. When a batch fails all the
// same (the connection broke, a statement raised an error), each of its
// transitions is sent again on its own, so that every one gets its own
// answer. Run starts are grouped too, as whole transactions in savepoints
// of one ([DB.InGroupTx]).

// groupCommitters is how many batches may be in flight at once: while one
// commits, the next forms and is sent on another connection.
const groupCommitters = 2

// maxGroup bounds a batch: past a few hundred statements a batch no longer
// saves commits worth its latency.
const maxGroup = 256

type groupRequest struct {
	ctx    context.Context
	params dbsqlc.StepSucceedAndContinueParams
	done   chan groupResult
}

type groupResult struct {
	row dbsqlc.StepSucceedAndContinueRow
	err error
}

func (r *groupRequest) context() context.Context { return r.ctx }
func (r *groupRequest) fail(err error)           { r.done <- groupResult{err: err} }

// batcher gathers requests from many goroutines into batches: a request
// that arrives when nothing is in flight is sent at once, alone, and those
// that arrive meanwhile form the next batch. send answers every request of
// its batch.
type batcher[R request] struct {
	once     sync.Once
	stopOnce sync.Once
	requests chan R
	closed   chan struct{}
	wg       sync.WaitGroup
}

// start starts the batcher's goroutines the first time it is used.
func (b *batcher[R]) start(send func(batch []R)) {
	b.once.Do(func() {
		b.requests = make(chan R, maxGroup*groupCommitters)
		b.closed = make(chan struct{})
		for range groupCommitters {
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.run(send)
			}()
		}
	})
}

// request is what a batcher batches: a caller's request, with the caller's
// context, that can be answered with a failure.
type request interface {
	context() context.Context
	fail(err error)
}

// live answers the requests of batch whose callers have gone and returns
// the others, reusing batch's array.
func live[R request](batch []R) []R {
	out := batch[:0]
	for _, r := range batch {
		if err := r.context().Err(); err != nil {
			r.fail(err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// stop ends the batcher's goroutines once the batches in flight are done,
// and fails the requests still queued. Requests sent after it fail.
func (b *batcher[R]) stop() {
	b.once.Do(func() { b.closed = make(chan struct{}) }) // never started: it never will
	b.stopOnce.Do(func() { close(b.closed) })
	b.wg.Wait()
	for {
		select {
		case r := <-b.requests:
			r.fail(errClosed)
		default:
			return
		}
	}
}

// enqueue hands r to the batcher.
func (b *batcher[R]) enqueue(ctx context.Context, r R, send func(batch []R)) error {
	b.start(send)
	select {
	case b.requests <- r:
		return nil
	case <-b.closed:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher[R]) run(send func(batch []R)) {
	for {
		var first R
		select {
		case first = <-b.requests:
		case <-b.closed:
			return
		}
		batch := []R{first}
	gather:
		for len(batch) < maxGroup {
			select {
			case r := <-b.requests:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		send(batch)
	}
}

var errClosed = errors.New("the database pool is closed")

// succeedAndContinueGrouped sends one hot-path statement through the
// batcher and waits for its batch.
func (db *DB) succeedAndContinueGrouped(ctx context.Context, p dbsqlc.StepSucceedAndContinueParams) (dbsqlc.StepSucceedAndContinueRow, error) {
	r := &groupRequest{ctx: ctx, params: p, done: make(chan groupResult, 1)}
	if err := db.steps.enqueue(ctx, r, db.commitSteps); err != nil {
		return dbsqlc.StepSucceedAndContinueRow{}, err
	}
	// Once queued, the transition may be committed whatever happens to
	// ctx: its answer must be awaited to be known.
	res := <-r.done
	return res.row, res.err
}

// commitSteps sends a batch of hot-path statements in one transaction and
// answers each request.
func (db *DB) commitSteps(batch []*groupRequest) {
	batch = live(batch)
	switch len(batch) {
	case 0:
		return
	case 1:
		// Alone: one statement is its own transaction.
		rows, err := sendSteps(batch[0].ctx, db.q, batch)
		batch[0].done <- groupResult{rows[0], err}
		return
	}
	// The batch outlives any one request's context: they all wait for it.
	results, err := db.sendStepsInTx(context.WithoutCancel(batch[0].ctx), batch)
	for i, r := range batch {
		if err != nil {
			rows, err := sendSteps(r.ctx, db.q, []*groupRequest{r})
			r.done <- groupResult{rows[0], err}
			continue
		}
		r.done <- groupResult{row: results[i]}
	}
}

// sendStepsInTx sends the batch's statements, pipelined, in one
// transaction.
func (db *DB) sendStepsInTx(ctx context.Context, batch []*groupRequest) ([]dbsqlc.StepSucceedAndContinueRow, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, translate(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	results, err := sendSteps(ctx, dbsqlc.New(tx), batch)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, translate(err)
	}
	return results, nil
}

// sendSteps sends the batch's statements, pipelined, through q: in a
// transaction, or as one implicit transaction of their own. It returns what
// each statement answered, or the first error.
func sendSteps(ctx context.Context, q *dbsqlc.Queries, batch []*groupRequest) ([]dbsqlc.StepSucceedAndContinueRow, error) {
	params := make([]dbsqlc.StepSucceedAndContinueParams, len(batch))
	for i, r := range batch {
		params[i] = r.params
	}
	results := make([]dbsqlc.StepSucceedAndContinueRow, len(batch))
	var firstErr error
	br := q.StepSucceedAndContinue(ctx, params)
	br.QueryRow(func(i int, row dbsqlc.StepSucceedAndContinueRow, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		results[i] = row
	})
	if err := br.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return results, fmt.Errorf("succeed step and continue: %w", translate(firstErr))
	}
	return results, nil
}

// txRequest is a transaction function sent to [DB.InGroupTx].
type txRequest struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *Tx) error
	done chan error
}

func (r *txRequest) context() context.Context { return r.ctx }
func (r *txRequest) fail(err error)           { r.done <- err }

// InGroupTx runs fn in a transaction that it may share with other callers'
// (group commit): fns sent while a batch commits run one after another in
// the next batch's transaction, each in a savepoint of its own, so that one
// that fails is rolled back alone, and all are committed together. It
// returns fn's error, or the commit's. fn is given the context to use,
// which outlives the caller's: a cancelled query would break the
// transaction it shares. fn must not wait for locks that another caller's
// transaction may hold, such as a row a concurrent request also updates:
// its batch would hold them until it commits.
//
// Use it for transitions that touch their own rows (a run's start); a
// transition that locks rows other transitions lock goes through [DB.InTx].
func (db *DB) InGroupTx(ctx context.Context, fn func(ctx context.Context, tx *Tx) error) error {
	r := &txRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := db.txs.enqueue(ctx, r, db.commitTxs); err != nil {
		return err
	}
	return <-r.done
}

// commitTxs runs a batch of transaction functions in one transaction.
func (db *DB) commitTxs(batch []*txRequest) {
	batch = live(batch)
	switch len(batch) {
	case 0:
		return
	case 1:
		batch[0].done <- batch[0].alone(db, batch[0].ctx)
		return
	}
	ctx := context.WithoutCancel(batch[0].ctx)
	errs := make([]error, len(batch))
	err := db.InTx(ctx, func(tx *Tx) error {
		for i, r := range batch {
			errs[i] = tx.Savepoint(ctx, func(sp *Tx) error { return r.fn(ctx, sp) })
			if fault.Is(errs[i], fault.Unavailable) {
				return errs[i] // the connection is gone: so is the batch
			}
		}
		return nil
	})
	for i, r := range batch {
		switch {
		case err == nil && hasCode(errs[i], codeDeadlockDetected, codeSerializationFailure):
			// Two batches crossed (two starts with each other's
			// idempotency keys): this one is tried again on its own.
			r.done <- r.alone(db, ctx)
		case errs[i] != nil:
			r.done <- errs[i]
		default:
			r.done <- err
		}
	}
}

// alone runs the request's function in a transaction of its own.
func (r *txRequest) alone(db *DB, ctx context.Context) error {
	return db.InTx(ctx, func(tx *Tx) error { return r.fn(ctx, tx) })
}
