package orchestrator

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunTurns(t *testing.T) {
	t.Parallel()
	var turns runTurns
	a, b := uuid.New(), uuid.New()
	var inA atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			done := turns.take(a)
			defer done()
			assert.Equal(t, int32(1), inA.Add(1), "two turns of one run at once")
			time.Sleep(100 * time.Microsecond)
			inA.Add(-1)
		}()
		go func() {
			defer wg.Done()
			turns.take(b)() // another run never waits for a's turns
		}()
	}
	wg.Wait()
	require.Empty(t, turns.turns, "ended turns leave nothing behind")
}
