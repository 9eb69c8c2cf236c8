package dashboard

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// hub fans the database's notifications of runs' status changes out to the
// pages open in browsers: one LISTEN connection per API process, however
// many pages watch.
type hub struct {
	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

// watcher is one open page: it wants to hear of run (uuid.Nil: any run).
type watcher struct {
	run     uuid.UUID
	changed chan struct{}
}

func newHub() *hub { return &hub{watchers: make(map[*watcher]struct{})} }

// changed tells the watchers of id, and those of any run, that it changed;
// uuid.Nil (notifications may have been missed) tells every watcher.
func (h *hub) changed(id uuid.UUID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		if id == uuid.Nil || w.run == uuid.Nil || w.run == id {
			select {
			case w.changed <- struct{}{}:
			default: // a change is pending already: one re-render covers both
			}
		}
	}
}

func (h *hub) watch(run uuid.UUID) (*watcher, func()) {
	w := &watcher{run: run, changed: make(chan struct{}, 1)}
	h.mu.Lock()
	h.watchers[w] = struct{}{}
	h.mu.Unlock()
	return w, func() {
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}
}

// liveMinInterval bounds how often one page is sent a change: a list page
// watching thousands of runs finishing a second re-renders once a second.
const liveMinInterval = time.Second

// liveKeepAlive is how often an idle stream sends a comment, so that
// proxies do not close it.
const liveKeepAlive = 25 * time.Second

// serveEvents streams Server-Sent Events to the page: render's HTML as the
// event named event once at the start and after each change of run, until
// the browser goes away.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request, run uuid.UUID, event string, render func(ctx context.Context) (string, error)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	// The server's write timeout would cut a stream after a minute.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	watch, stop := d.hub.watch(run)
	defer stop()
	send := func() bool {
		html, err := render(r.Context())
		if err != nil {
			if r.Context().Err() == nil {
				d.logger.WarnContext(r.Context(), "dashboard: render a live update", "error", err)
			}
			return r.Context().Err() == nil
		}
		if _, err := fmt.Fprint(w, sseMessage(event, html)); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if !send() {
		return
	}
	keepAlive := time.NewTicker(liveKeepAlive)
	defer keepAlive.Stop()
	last := time.Now()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.closing:
			return
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-watch.changed:
			if wait := liveMinInterval - time.Since(last); wait > 0 {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(wait):
				}
			}
			last = time.Now()
			if !send() {
				return
			}
		}
	}
}

// sseMessage is one Server-Sent Event: each line of data on a data field
// of its own, as the format requires.
func sseMessage(event, data string) string {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for line := range strings.SplitSeq(strings.ReplaceAll(data, "\r", ""), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

// listen feeds the hub from the database until ctx ends.
func (d *Dashboard) listen(ctx context.Context, logger *slog.Logger) {
	d.api.WatchRunStatuses(ctx, d.hub.changed, logger)
}
