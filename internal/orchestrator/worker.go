package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/httpstep"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// WorkerConfig tunes a [Worker].
type WorkerConfig struct {
	// Client makes the step requests.
	Client *httpstep.Client
	// Concurrency bounds the steps the worker runs at once.
	Concurrency int
	// ClaimBatch bounds the work items claimed in one transaction.
	ClaimBatch int
	// PollInterval is how often the worker looks for due work when no
	// notification wakes it: the fallback for lost notifications and the
	// clock for retries, timeouts and expired leases.
	PollInterval time.Duration
	// ShutdownGrace is how long steps in flight may take to finish once the
	// worker is told to stop; then they are abandoned and their work
	// released for another worker.
	ShutdownGrace time.Duration
	// Retention is how long finished runs are kept when their workflow's
	// definition says nothing (0: [workflow.DefaultRetention]); the worker deletes
	// them after that (see retention.go).
	Retention time.Duration
	// Operations is how the worker processes bulk operations (see
	// operations.go); zero fields take their defaults.
	Operations OperationConfig
}

// Events are kept a little longer than the longest look-back window, then
// deleted by whichever worker gets to them (see [Worker.retain]).
const (
	eventRetention       = 169 * time.Hour
	eventCleanupInterval = 5 * time.Minute
)

// claimLease is how long a claimed work item stays invisible to other
// workers before the claiming transaction gives it its real lease (a step's
// timeout plus a margin): at most this, and no longer than the lease margin,
// since a worker that dies between claiming an item and beginning it (items
// that begin alone, in a transaction of their own) holds it that long. An
// item whose processing fails keeps it, so it is retried after this long
// rather than at once.
const claimLease = 15 * time.Second

// Worker claims due work from the database and advances runs: it makes
// step attempts, records their results, and fires timeouts. Any number of
// workers may run against one database.
type Worker struct {
	svc    *core
	cfg    WorkerConfig
	wake   chan struct{}
	freed  chan struct{}
	active sync.WaitGroup
}

// NewWorker returns a worker: the engine that advances runs. Its options
// must include [WithSigning] and [WithWorkerID]. It ends the runs of db
// that reach their history cap (see [postgres.DB.OnHistoryCap]).
func NewWorker(db *postgres.DB, limits Limits, logger *slog.Logger, cfg WorkerConfig, opts ...Option) *Worker {
	svc := newCore(db, limits, logger, opts...)
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.ClaimBatch < 1 {
		cfg.ClaimBatch = 32
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = workflow.DefaultRetention
	}
	cfg.Operations = cfg.Operations.withDefaults()
	return &Worker{svc: svc, cfg: cfg, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run works until ctx ends, then stops claiming, lets the steps in flight
// finish within the shutdown grace period, and releases what it still
// holds. It returns once every step it started has ended.
func (w *Worker) Run(ctx context.Context) error {
	// hard outlives ctx by the grace period: steps in flight use it.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	listenCtx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	go w.svc.claimDB().Listen(listenCtx, "durable_work", func() { signal(w.wake) }, w.svc.logger)

	slots := make(chan struct{}, w.cfg.Concurrency)
	sleep := time.NewTimer(w.cfg.PollInterval)
	defer sleep.Stop()
	// Schedules are looked at when the clock wakes the worker (it sleeps
	// until the next firing too) and at least every poll interval.
	var lastSchedules time.Time
	retained := make(chan struct{})
	go func() { defer close(retained); w.retain(ctx) }()
	operated := make(chan struct{})
	go func() { defer close(operated); w.processOperations(ctx, w.cfg.Operations) }()
	w.svc.logger.InfoContext(ctx, "worker started", "concurrency", w.cfg.Concurrency)
	for ctx.Err() == nil {
		free := cap(slots) - len(slots)
		wait := w.cfg.PollInterval
		if free > 0 {
			n := min(free, w.cfg.ClaimBatch)
			c, err := w.svc.claim(ctx, n)
			if err != nil && ctx.Err() == nil {
				w.svc.logger.ErrorContext(ctx, "claim work", "error", err)
			}
			for _, a := range c.attempts {
				w.start(slots, func() { w.execute(ctx, hard, a) })
			}
			for _, item := range c.timers {
				w.start(slots, func() { w.fireTimer(hard, item) })
			}
			for _, item := range c.alone {
				w.start(slots, func() {
					w.begin(ctx, hard, item.RunID, func() (*attempt, error) { return w.svc.beginAlone(hard, item) })
				})
			}
			for _, f := range c.prepared {
				w.start(slots, func() {
					w.begin(ctx, hard, f.item.RunID, func() (*attempt, error) { return w.svc.beginPrepared(hard, f) })
				})
			}
			for _, item := range c.compensations {
				w.start(slots, func() { w.compensate(hard, item) })
			}
			if c.count() == n {
				continue // there may be more due work
			}
			if !c.nextDue.IsZero() {
				// Sleep until the next timer, retry or lease end, so that a
				// sleeping run wakes on time without anyone polling for it.
				wait = min(wait, max(time.Until(c.nextDue), time.Millisecond))
			}
		}
		sleep.Reset(wait)
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-w.freed:
		case <-sleep.C:
			// Woken by the clock: a schedule may be due.
			lastSchedules = time.Time{}
		}
		if time.Since(lastSchedules) >= w.cfg.PollInterval {
			if _, err := w.svc.fireDueSchedules(ctx); err != nil && ctx.Err() == nil {
				w.svc.logger.ErrorContext(ctx, "fire schedules", "error", err)
			}
			lastSchedules = time.Now()
		}
	}

	<-retained
	<-operated
	done := make(chan struct{})
	go func() { w.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownGrace):
		w.svc.logger.Warn("shutdown grace period over; abandoning the steps still in flight")
		cancelHard()
		<-done
	}
	w.svc.logger.Info("worker stopped")
	return nil
}

// start runs fn in a goroutine holding one of the worker's slots.
func (w *Worker) start(slots chan struct{}, fn func()) {
	slots <- struct{}{}
	w.active.Add(1)
	go func() {
		defer func() {
			<-slots
			w.active.Done()
			signal(w.freed)
		}()
		fn()
	}()
}

// begin begins a claimed item's work with fn and makes the attempt it
// started, if any.
func (w *Worker) begin(soft, hard context.Context, runID uuid.UUID, fn func() (*attempt, error)) {
	a, err := fn()
	if err != nil && !errors.Is(err, errLeaseLost) {
		w.svc.logger.ErrorContext(hard, "begin work", "run_id", runID, "error", err)
	}
	if a != nil {
		w.execute(soft, hard, a)
	}
}

// execute makes an attempt and records its result, going straight on to
// the run's next step while there is one and the worker is not stopping.
func (w *Worker) execute(soft, hard context.Context, a *attempt) {
	logger := w.svc.logger
	for a != nil {
		span := w.svc.startAttemptSpan(hard, stepSpan(a.state.Run, a.execID), attemptOf{
			run: a.state.Run, name: a.step.Name, key: a.key, number: a.number, method: a.step.Call.Method, url: a.step.Call.URL,
		})
		req, err := w.svc.request(hard, a)
		var res httpstep.Result
		if err != nil {
			res = httpstep.Result{Outcome: httpstep.Permanent, Error: engine.ErrorJSON("the step's headers could not be built: "+err.Error(), 0)}
		} else {
			carryTrace(span, &req)
			res = w.cfg.Client.Invoke(hard, req)
			w.svc.obs.AttemptTook(a.state.Run.Workflow, a.step.Name, res.Duration)
		}
		endAttemptSpan(span, res)
		if hard.Err() != nil {
			w.release(hard, a)
			return
		}
		next, err := w.record(hard, a, res, soft.Err() != nil)
		switch {
		case errors.Is(err, errLeaseLost), errors.Is(err, errStale):
			logger.InfoContext(hard, "step result ignored", "run_id", a.state.Run.ID, "workflow", a.state.Run.Workflow, "step", a.key, "attempt", a.number, "reason", w.ignoredBecause(hard, a, err))
			if errors.Is(err, errStale) {
				// The step ended otherwise (its lane was cancelled): its
				// work has nothing left to do.
				if _, err := w.svc.db.DropStaleWork(hard, a.item); err != nil {
					logger.WarnContext(hard, "drop stale work; its lease will expire instead", "run_id", a.state.Run.ID, "error", err)
				}
			}
			return
		case err != nil:
			// The lease runs out and another worker retries the attempt.
			logger.ErrorContext(hard, "record step result", "run_id", a.state.Run.ID, "step", a.step.Name, "attempt", a.number, "error", err)
			return
		}
		a = next
	}
}

// ignoredBecause says why a's result was not recorded: a run ended from
// outside its steps (a cancel, its timeout) drops its work, which the
// worker sees as a lost lease, so the run is read to tell the two apart. A
// run that ended otherwise was moved on by the worker that took the lease
// over.
func (w *Worker) ignoredBecause(ctx context.Context, a *attempt, err error) string {
	run, rerr := w.svc.db.GetRun(ctx, a.state.Run.ID)
	if rerr == nil && (run.Status == workflow.RunCancelled || run.Status == workflow.RunTimedOut) {
		return "the run is " + inWords(run.Status) + "; the result is ignored"
	}
	return err.Error()
}

// record records an attempt's result, trying again after transient
// failures until the attempt's lease ends (see [Worker.recording]).
func (w *Worker) record(hard context.Context, a *attempt, res httpstep.Result, draining bool) (*attempt, error) {
	var next *attempt
	err := w.recording(hard, a.state.Run.ID, a.key, a.deadline.Add(w.svc.leaseMargin), func(ctx context.Context) (err error) {
		next, err = w.svc.recordResult(ctx, a, res, draining)
		return err
	})
	return next, err
}

// Pauses between tries to record a result: doubling from the first, at most
// the last, each with up to a fifth of jitter so that the steps in flight
// during an outage do not all come back at the same instant.
const (
	recordRetryFirst = 100 * time.Millisecond
	recordRetryMax   = 5 * time.Second
	// recordAtLeast is how long a result is tried for even when the lease
	// ended already: until another worker takes the work over, the lease
	// token still matches and the result can still be recorded.
	recordAtLeast = 10 * time.Second
)

// recording runs a transaction that records what a request to an endpoint
// answered. It runs on a context of its own, so that the end of the
// shutdown grace does not cut a recording short, and tries again after
// transient database failures — an outage included — for as long as the
// worker holds the work (until leaseEnd, by this process's clock, which the
// database's lease outlasts): a result already obtained is worth recording
// rather than asking the endpoint again. Each try re-checks the lease in
// its transaction, so a worker whose work was taken over stops at once.
func (w *Worker) recording(hard context.Context, runID uuid.UUID, step string, leaseEnd time.Time, tx func(ctx context.Context) error) error {
	ctx, cancel := context.WithDeadline(context.WithoutCancel(hard), later(leaseEnd, time.Now().Add(recordAtLeast)))
	defer cancel()
	pause := recordRetryFirst
	for tries := 1; ; tries++ {
		err := tx(ctx)
		if err == nil || errors.Is(err, errLeaseLost) || errors.Is(err, errStale) || !transient(err) {
			if err == nil && tries > 1 {
				w.svc.logger.InfoContext(ctx, "recorded a result after the database failed", "run_id", runID, "step", step, "tries", tries)
			}
			return err
		}
		if tries == 1 || tries%10 == 0 {
			w.svc.logger.WarnContext(ctx, "recording a result failed; trying again until the lease ends", "run_id", runID, "step", step, "tries", tries, "lease_ends", leaseEnd, "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up recording after %d tries, at the end of the lease: %w", tries, err)
		case <-time.After(pause + rand.N(pause/5+1)):
		}
		pause = min(2*pause, recordRetryMax)
	}
}

// transient reports whether a failed transition may succeed if tried again:
// the database was unreachable, or failed in a way that is not the
// request's fault (a serialization failure, a deadlock, an internal error).
func transient(err error) bool {
	k := fault.KindOf(err)
	return k == fault.Internal || k == fault.Unavailable
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// release gives up an attempt cut short by shutdown: it is recorded as
// abandoned and the step is due again at once, for any worker.
func (w *Worker) release(hard context.Context, a *attempt) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(hard), 5*time.Second)
	defer cancel()
	err := w.svc.db.InTx(ctx, func(tx *postgres.Tx) error {
		if ok, err := tx.LockLeasedWork(ctx, a.item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		stopped := engine.ErrorJSON("the worker shut down during the attempt", 0)
		if _, ok, err := tx.AbandonStepAttempt(ctx, a.execID, a.number, stopped); err != nil || !ok {
			return orStale(err, ok)
		}
		if ok, err := tx.RescheduleWork(ctx, a.item, postgres.WorkTarget{Kind: postgres.WorkInvoke, StepExecutionID: &a.execID, Attempt: a.number + 1}, 0); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		appendHistory(tx, a.state.Run.ID, workflow.EventStepAbandoned, a.key, &a.number, map[string]any{"error": stopped})
		return nil
	})
	if err != nil {
		w.svc.logger.Warn("release abandoned attempt; its lease will expire instead", "run_id", a.state.Run.ID, "step", a.step.Name, "error", err)
	}
}

// firstStepBatchWait is how long a claim waits for the inputs of its new
// runs' first steps before it starts those that are ready in one round
// trip. Rendering an input takes microseconds; one that takes longer
// begins on its own when it is ready, so that it delays no other run.
const firstStepBatchWait = 20 * time.Millisecond

// claim leases up to n due work items. The claim's transaction only leases
// them and reads their runs: no expression is evaluated in it, so a costly
// one delays no other run. Timer items are returned to be fired each in a
// transaction of its own, and so are the others, each begun in its own
// transaction, except the common case: a new run's first step.
//
// First steps have their inputs rendered outside any transaction, in
// parallel, each once, and those ready within [firstStepBatchWait] are
// started with one statement each, all sent in one pipelined round trip:
// under load, every round trip waits for a busy database, and runs started
// in a burst would wait for their first step. The others begin on their
// own once rendered, with the input (or the failure) already built.
func (s *core) claim(ctx context.Context, n int) (claimed, error) {
	c, firsts, err := s.claimTx(ctx, n)
	if err != nil || len(firsts) == 0 {
		return c, err
	}
	// Rendering is bounded by its own time limit; cut short by a shutdown,
	// it would fail the step.
	prepareCtx := context.WithoutCancel(ctx)
	for _, f := range firsts {
		go f.prepare(prepareCtx, s)
	}
	wait := time.NewTimer(firstStepBatchWait)
	defer wait.Stop()
	var batch []*firstStep
gather:
	for i, f := range firsts {
		select {
		case <-f.done:
			if f.err == nil && f.renderErr == nil {
				batch = append(batch, f)
			} else {
				c.prepared = append(c.prepared, f)
			}
		case <-wait.C:
			c.prepared = append(c.prepared, firsts[i:]...)
			break gather
		}
	}
	if len(batch) == 0 {
		return c, nil
	}
	starts := make([]postgres.StepStart, len(batch))
	for i, f := range batch {
		starts[i] = f.start
	}
	var started []bool
	err = s.claimDB().InTx(ctx, func(tx *postgres.Tx) (err error) {
		started, err = tx.StartSteps(ctx, starts)
		return err
	})
	if err != nil {
		// One start failed the transaction: each begins on its own, so
		// that the others' start in place.
		s.logger.WarnContext(ctx, "starting first steps one at a time", "error", err)
		c.prepared = append(c.prepared, batch...)
		return c, nil
	}
	for i, f := range batch {
		if started[i] {
			f.a.state.Run.Status = workflow.RunRunning
			c.attempts = append(c.attempts, f.a)
		}
	}
	return c, nil
}

// claimed is what one claim found.
type claimed struct {
	attempts []*attempt
	timers   []postgres.WorkItem
	// alone are items that begin each in a transaction of its own: whatever
	// they begin may evaluate expressions, which a claim must not wait for,
	// and some lock more than their work item (a wait takes advisory locks
	// on its event keys; the transitions of runs with lanes lock the run's
	// row), which a claim of many items must not do in any order.
	alone []postgres.WorkItem
	// prepared are new runs' first steps that begin on their own: their
	// input took long to render or could not be built, or their batch
	// failed.
	prepared []*firstStep
	// compensations are attempts at steps' compensations, each prepared
	// and recorded in transactions of its own.
	compensations []postgres.WorkItem
	// nextDue is when the next work item comes due, read when the claim
	// found less than it could take: the worker sleeps until then.
	nextDue time.Time
}

func (c claimed) count() int {
	return len(c.attempts) + len(c.timers) + len(c.alone) + len(c.prepared) + len(c.compensations)
}

// firstStep is a claimed new run whose first step is a call: its first
// attempt is prepared (its input rendered) outside any transaction.
type firstStep struct {
	item postgres.WorkItem
	run  workflow.Run
	done chan struct{} // closed once prepared
	// Set once done: the attempt and its start, or renderErr when the
	// input could not be built (the step then fails), or err when the
	// attempt could not be prepared at all (the item then begins as any
	// other).
	a         *attempt
	start     postgres.StepStart
	renderErr error
	err       error
}

func (f *firstStep) prepare(ctx context.Context, s *core) {
	defer close(f.done)
	st, err := s.loadRunState(ctx, s.db, f.run, "")
	if err != nil {
		f.err = err
		return
	}
	f.a, f.start, f.renderErr, f.err = s.prepareStart(ctx, f.item, st, st.Def.Steps[0])
}

// beginPrepared begins a first step prepared by a claim, in a transaction of
// its own, once it is prepared.
func (s *core) beginPrepared(ctx context.Context, f *firstStep) (*attempt, error) {
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return s.beginAlone(ctx, f.item)
	}
	var a *attempt
	err := s.db.InTx(ctx, func(tx *postgres.Tx) (err error) {
		a, err = s.startPrepared(ctx, tx, f.a, f.start, f.renderErr)
		return err
	})
	return a, err
}

func (s *core) claimTx(ctx context.Context, n int) (claimed, []*firstStep, error) {
	var c claimed
	var firsts []*firstStep
	err := s.claimDB().InTx(ctx, func(tx *postgres.Tx) (err error) {
		c, firsts = claimed{}, nil
		items, err := tx.ClaimWork(ctx, s.workerID, n, min(claimLease, s.leaseMargin))
		if err != nil {
			return err
		}
		if len(items) < n {
			// At the end of the transaction, once the claimed items are
			// repointed, and in it: an idle worker's look at the clock of
			// the queue costs no commit of its own.
			defer func() {
				if err == nil {
					c.nextDue, err = tx.NextDue(ctx)
				}
			}()
		}
		if len(items) == 0 {
			return nil
		}
		ids := make([]uuid.UUID, len(items))
		for i, it := range items {
			ids[i] = it.RunID
		}
		runs, err := tx.GetRuns(ctx, ids)
		if err != nil {
			return err
		}
		byID := make(map[uuid.UUID]workflow.Run, len(runs))
		for _, r := range runs {
			byID[r.ID] = r
		}
		for _, item := range items {
			switch run := byID[item.RunID]; {
			case isTimer(item.Kind):
				c.timers = append(c.timers, item)
			case item.Kind == postgres.WorkCompensate:
				c.compensations = append(c.compensations, item)
			case s.beginsWithCall(ctx, tx, item, run):
				firsts = append(firsts, &firstStep{item: item, run: run, done: make(chan struct{})})
			default:
				c.alone = append(c.alone, item)
			}
		}
		return nil
	})
	if err != nil {
		return claimed{}, nil, err
	}
	return c, firsts, nil
}

// beginsWithCall reports whether a claimed item is a new run's first step,
// a call, of a workflow without lanes.
func (s *core) beginsWithCall(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, run workflow.Run) bool {
	if item.Kind != postgres.WorkAdvance || item.AfterStep != "" || run.ID == uuid.Nil || run.Status != workflow.RunPending {
		return false
	}
	def, err := s.definitionOf(ctx, tx, run.Workflow, run.Version)
	return err == nil && !def.HasLanes() && def.Steps[0].Call != nil && !def.Steps[0].Call.HasFlowLimits()
}

// beginAlone begins a claimed item's work in a transaction of its own and
// returns the attempt it started, if any.
func (s *core) beginAlone(ctx context.Context, item postgres.WorkItem) (*attempt, error) {
	var a *attempt
	err := s.inTurn(ctx, item.RunID, item, nil, func(ctx context.Context, tx *postgres.Tx) error {
		if _, ok, err := tx.LockLeasedWorkAndRun(ctx, item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		run, err := tx.GetRun(ctx, item.RunID)
		if err != nil {
			return err
		}
		a, err = s.beginWork(ctx, tx, item, run)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// beginWork starts the attempt a claimed advance or invoke item calls for,
// or finishes the run when it has no step left. A run that is no longer
// active (ended, compensating) has nothing for it to do.
func (s *core) beginWork(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, run workflow.Run) (*attempt, error) {
	if run.ID == uuid.Nil || !run.Status.Active() {
		_, err := tx.CompleteWork(ctx, item)
		return nil, err
	}
	def, err := s.definitionOf(ctx, tx, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	key := item.AfterStep
	var exec workflow.StepExecution
	if item.Kind == postgres.WorkInvoke {
		if exec, err = tx.GetStepExecution(ctx, *item.StepExecutionID); err != nil {
			return nil, err
		}
		key = exec.Key
	}
	st, err := s.loadRunState(ctx, tx, run, engine.ScopeOf(def, key))
	if err != nil {
		return nil, err
	}
	if item.Kind == postgres.WorkInvoke {
		return s.restartStep(ctx, tx, item, st, exec)
	}
	return s.advance(ctx, tx, item, st, key)
}

// isTimer reports whether a work item kind is a timer: handled in a
// transaction of its own, with no step request.
func isTimer(kind string) bool {
	switch kind {
	case postgres.WorkRunTimeout, postgres.WorkStepTimeout, postgres.WorkTimer, postgres.WorkWaitTimeout, postgres.WorkChildDone:
		return true
	}
	return false
}

// fireTimer handles a due timer item in its own transaction.
func (w *Worker) fireTimer(ctx context.Context, item postgres.WorkItem) {
	var err error
	switch item.Kind {
	case postgres.WorkRunTimeout:
		err = w.svc.timeOutRun(ctx, item)
	case postgres.WorkStepTimeout:
		err = w.svc.timeOutStep(ctx, item)
	case postgres.WorkTimer:
		err = w.svc.fireSleep(ctx, item)
	case postgres.WorkWaitTimeout:
		err = w.svc.timeOutWait(ctx, item)
	case postgres.WorkChildDone:
		err = w.svc.childDone(ctx, item)
	default:
		err = fmt.Errorf("unknown timer kind %q", item.Kind)
	}
	if err != nil && !errors.Is(err, errLeaseLost) {
		w.svc.logger.ErrorContext(ctx, "fire timer", "run_id", item.RunID, "kind", item.Kind, "error", err)
	}
}

// timeOutRun ends a run whose run-level timeout passed.
func (s *core) timeOutRun(ctx context.Context, item postgres.WorkItem) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if _, err := tx.LockRunWork(ctx, item.RunID); err != nil {
			return err
		}
		run, ok, err := tx.FinishRun(ctx, item.RunID, workflow.RunTimedOut, nil, engine.RunError("the run's timeout passed", "run_timed_out", "", nil))
		if err != nil {
			return err
		}
		if !ok {
			_, err := tx.CompleteWork(ctx, item)
			return err
		}
		s.endRunSpan(ctx, tx, run)
		appendHistory(tx, item.RunID, workflow.EventRunTimedOut, "", nil, nil)
		s.runEnded(ctx, tx, run, workflow.RunTimedOut, run.Error)
		return s.releaseInterruptedRun(ctx, tx, run, "timed_out")
	})
}

// timeOutStep fires the deadline of a step parked after a 202: the attempt
// timed out and is retried or, with no attempts left, fails the step.
func (s *core) timeOutStep(ctx context.Context, item postgres.WorkItem) error {
	return s.db.InTx(ctx, func(tx *postgres.Tx) error {
		if _, ok, err := tx.LockLeasedWorkAndRun(ctx, item); err != nil || !ok {
			return orLeaseLost(err, ok)
		}
		exec, expired, err := tx.LockStepExecution(ctx, *item.StepExecutionID)
		if err != nil {
			return err
		}
		if exec.Status != "waiting" || exec.Attempt != item.Attempt {
			// Nothing waits on this deadline any more.
			_, err := tx.CompleteWork(ctx, item)
			return err
		}
		if !expired {
			// A heartbeat moved the deadline after this item became due.
			_, err := tx.RescheduleWork(ctx, item, postgres.WorkTarget{Kind: postgres.WorkStepTimeout, StepExecutionID: &exec.ID, Attempt: exec.Attempt}, time.Until(*exec.Deadline))
			return err
		}
		run, err := tx.GetRun(ctx, item.RunID)
		if err != nil {
			return err
		}
		a, err := s.currentAttempt(ctx, tx, item, run, exec)
		if err != nil {
			return err
		}
		appendHistory(tx, run.ID, workflow.EventStepTimedOut, exec.Key, &exec.Attempt, nil)
		if _, err := tx.MarkRunRunning(ctx, run.ID); err != nil {
			return err
		}
		stepErr := engine.ErrorJSON(fmt.Sprintf("no callback arrived within the step's callback timeout (%s)", a.step.Call.CallbackTimeout), 0)
		if d := engine.Judge(a.state, a.step, a.at(), engine.Answer{Outcome: engine.Retryable, Error: stepErr}, s.limits.engine(), rand.Int64N); d.Verdict == engine.Retry {
			return s.retryStep(ctx, tx, a, d.Error, 0, "timed_out", d.Delay)
		}
		return s.failStep(ctx, tx, a, stepErr, 0, "timed_out")
	})
}
