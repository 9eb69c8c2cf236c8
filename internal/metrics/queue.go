package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxCountedDue is how far durable_work_due counts: beyond it the queue is
// long enough to alert on, and counting further would cost each scrape.
const maxCountedDue = 100_000

var (
	workDueDesc = prometheus.NewDesc("durable_work_due",
		"Work items due and not claimed (counted up to 100000): steps to start or retry, timers, timeouts.", nil, nil)
	workLagDesc = prometheus.NewDesc("durable_work_lag_seconds",
		"How long the oldest due work item has waited to be claimed (0 when none is due).", nil, nil)
	runsQueuedDesc = prometheus.NewDesc("durable_runs_queued",
		"Runs queued behind their workflow's concurrency limits.", nil, nil)
	runsHeldDesc = prometheus.NewDesc("durable_runs_held",
		"Runs whose step waits for flow control: reason concurrency (a step's concurrency limit) or throttled (a rate limit).", []string{"reason"}, nil)
)

// queue reads the queue's depth and lag when scraped. Several scrapes in
// the same second share one read.
type queue struct {
	ctx    context.Context // the process's: reads stop when it ends
	db     Database
	logger *slog.Logger

	mu     sync.Mutex
	readAt time.Time
	due    int64
	lag    time.Duration
	// queued, concurrency and throttled are what flow control holds.
	queued, concurrency, throttled int64
	err                            error
}

func (q *queue) Describe(ch chan<- *prometheus.Desc) {
	ch <- workDueDesc
	ch <- workLagDesc
	ch <- runsQueuedDesc
	ch <- runsHeldDesc
}

func (q *queue) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.readAt) >= time.Second {
		ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
		q.due, q.lag, q.err = q.db.WorkDue(ctx, maxCountedDue)
		if q.err == nil {
			q.queued, q.concurrency, q.throttled, q.err = q.db.FlowHeld(ctx)
		}
		cancel()
		q.readAt = time.Now()
		if q.err != nil {
			q.logger.Warn("metrics: read the queue", "error", q.err)
		}
	}
	if q.err != nil {
		ch <- prometheus.NewInvalidMetric(workDueDesc, q.err)
		return
	}
	ch <- prometheus.MustNewConstMetric(workDueDesc, prometheus.GaugeValue, float64(q.due))
	ch <- prometheus.MustNewConstMetric(workLagDesc, prometheus.GaugeValue, q.lag.Seconds())
	ch <- prometheus.MustNewConstMetric(runsQueuedDesc, prometheus.GaugeValue, float64(q.queued))
	ch <- prometheus.MustNewConstMetric(runsHeldDesc, prometheus.GaugeValue, float64(q.concurrency), "concurrency")
	ch <- prometheus.MustNewConstMetric(runsHeldDesc, prometheus.GaugeValue, float64(q.throttled), "throttled")
}
