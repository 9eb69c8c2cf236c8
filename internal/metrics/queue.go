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
	err    error
}

func (q *queue) Describe(ch chan<- *prometheus.Desc) {
	ch <- workDueDesc
	ch <- workLagDesc
}

func (q *queue) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.readAt) >= time.Second {
		ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
		q.due, q.lag, q.err = q.db.WorkDue(ctx, maxCountedDue)
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
}
