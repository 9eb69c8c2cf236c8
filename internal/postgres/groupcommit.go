package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durablehq/durable/internal/postgres/internal/dbsqlc"
)

// Group commit: most of a loaded worker's transitions are steps that
// succeeded and go on to their run's next step, each one statement. Each
// used to be its own transaction, and PostgreSQL's work per commit (above
// all the WAL flush) was most of its CPU. A committer gathers the
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
// answer.

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
	n   int32
	err error
}

type committer struct {
	once     sync.Once
	requests chan *groupRequest
	closed   chan struct{}
	wg       sync.WaitGroup
}

// start starts the committer's goroutines the first time it is used.
func (c *committer) start(pool *pgxpool.Pool) {
	c.once.Do(func() {
		c.requests = make(chan *groupRequest, maxGroup*groupCommitters)
		c.closed = make(chan struct{})
		for range groupCommitters {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.run(pool)
			}()
		}
	})
}

// stop ends the committer's goroutines once the batches in flight are done.
// Transitions sent after it fail.
func (c *committer) stop() {
	c.once.Do(func() {}) // never started: nothing to stop, and it never will
	if c.closed != nil {
		close(c.closed)
		c.wg.Wait()
	}
}

var errClosed = errors.New("the database pool is closed")

// succeedAndContinue sends one transition through the committer and waits
// for its batch.
func (c *committer) succeedAndContinue(ctx context.Context, pool *pgxpool.Pool, p dbsqlc.StepSucceedAndContinueParams) (int32, error) {
	c.start(pool)
	r := &groupRequest{ctx: ctx, params: p, done: make(chan groupResult, 1)}
	select {
	case c.requests <- r:
	case <-c.closed:
		return 0, errClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// Once queued, the transition may be committed whatever happens to
	// ctx: its answer must be awaited to be known.
	res := <-r.done
	return res.n, res.err
}

func (c *committer) run(pool *pgxpool.Pool) {
	for {
		var first *groupRequest
		select {
		case first = <-c.requests:
		case <-c.closed:
			return
		}
		batch := []*groupRequest{first}
	gather:
		for len(batch) < maxGroup {
			select {
			case r := <-c.requests:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		c.commit(pool, batch)
	}
}

// commit sends a batch in one transaction and answers each request.
func (c *committer) commit(pool *pgxpool.Pool, batch []*groupRequest) {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- groupResult{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		// Alone: one statement is its own transaction.
		n, err := sendOne(live[0].ctx, dbsqlc.New(pool), live[0].params)
		live[0].done <- groupResult{n, err}
		return
	}
	// The batch outlives any one request's context: they all wait for it.
	ctx := context.WithoutCancel(live[0].ctx)
	results, err := sendGroup(ctx, pool, live)
	if err != nil {
		for _, r := range live {
			n, err := sendOne(r.ctx, dbsqlc.New(pool), r.params)
			r.done <- groupResult{n, err}
		}
		return
	}
	for i, r := range live {
		r.done <- groupResult{n: results[i]}
	}
}

// sendGroup runs the batch's statements, pipelined, in one transaction.
func sendGroup(ctx context.Context, pool *pgxpool.Pool, batch []*groupRequest) ([]int32, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	params := make([]dbsqlc.StepSucceedAndContinueParams, len(batch))
	for i, r := range batch {
		params[i] = r.params
	}
	results := make([]int32, len(batch))
	var firstErr error
	br := dbsqlc.New(tx).StepSucceedAndContinue(ctx, params)
	br.QueryRow(func(i int, n int32, err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
		results[i] = n
	})
	if err := br.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

// sendOne runs one statement as its own transaction.
func sendOne(ctx context.Context, q *dbsqlc.Queries, p dbsqlc.StepSucceedAndContinueParams) (int32, error) {
	var n int32
	var sendErr error
	br := q.StepSucceedAndContinue(ctx, []dbsqlc.StepSucceedAndContinueParams{p})
	br.QueryRow(func(_ int, got int32, err error) { n, sendErr = got, err })
	if err := br.Close(); err != nil && sendErr == nil {
		sendErr = err
	}
	if sendErr != nil {
		return 0, fmt.Errorf("succeed step and continue: %w", translate(sendErr))
	}
	return n, nil
}
