package orchestrator

import (
	"sync"

	"github.com/google/uuid"
)

// runTurns lets one transaction per run at a time, within this process,
// ask the database for a connection to lock the run's row. The lanes of a
// run take turns on that row anyway; without this, a run with many lanes in
// flight would hold most of the pool's connections waiting for its own row,
// and every other run would wait for a connection.
type runTurns struct {
	mu    sync.Mutex
	turns map[uuid.UUID]*runTurn
}

type runTurn struct {
	sync.Mutex
	waiting int // holders and waiters; the entry goes when it drops to 0
}

// take waits for the run's turn and returns the function that ends it.
func (t *runTurns) take(run uuid.UUID) (done func()) {
	t.mu.Lock()
	if t.turns == nil {
		t.turns = map[uuid.UUID]*runTurn{}
	}
	turn := t.turns[run]
	if turn == nil {
		turn = &runTurn{}
		t.turns[run] = turn
	}
	turn.waiting++
	t.mu.Unlock()
	turn.Lock()
	return func() {
		turn.Unlock()
		t.mu.Lock()
		if turn.waiting--; turn.waiting == 0 {
			delete(t.turns, run)
		}
		t.mu.Unlock()
	}
}
