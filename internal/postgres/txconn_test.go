package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/postgres/pgtest"
	"github.com/durablehq/durable/internal/workflow"
)

// TestSavepoints checks savepoints whose statements are sent ahead of the
// statements that follow them: a savepoint that fails — refused after it
// wrote, or by a statement the database rejected, alone or nested, last
// before the commit or not — is rolled back alone, the transaction goes on
// and commits the rest, and a savepoint that sent nothing costs nothing.
func TestSavepoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	// A workflow's version counter counts the writes that were kept.
	reserve := func(tx *postgres.Tx) int {
		v, _, err := tx.ReserveWorkflowVersion(ctx, "w", 0)
		require.NoError(t, err)
		return v
	}
	refused := errors.New("refused")
	rejected := func(tx *postgres.Tx) error {
		_, err := tx.InsertWorkflowVersion(ctx, workflow.WorkflowVersion{Name: "ghost", Version: 1, Definition: []byte(`{}`), Hash: []byte("h")}, "")
		require.True(t, fault.Is(err, fault.NotFound), "%v", err)
		return err
	}
	err := db.InTx(ctx, func(tx *postgres.Tx) error {
		require.NoError(t, tx.Savepoint(ctx, func(sp *postgres.Tx) error {
			require.Equal(t, 1, reserve(sp))
			return nil
		}))
		require.ErrorIs(t, tx.Savepoint(ctx, func(sp *postgres.Tx) error {
			require.Equal(t, 2, reserve(sp))
			return refused
		}), refused)
		require.Error(t, tx.Savepoint(ctx, rejected))
		require.NoError(t, tx.Savepoint(ctx, func(sp *postgres.Tx) error {
			require.Equal(t, 2, reserve(sp))
			require.ErrorIs(t, sp.Savepoint(ctx, func(inner *postgres.Tx) error {
				require.Equal(t, 3, reserve(inner))
				return refused
			}), refused)
			require.Error(t, sp.Savepoint(ctx, rejected))
			return nil
		}))
		require.NoError(t, tx.Savepoint(ctx, func(*postgres.Tx) error { return nil }))
		require.Equal(t, 3, reserve(tx))
		require.Error(t, tx.Savepoint(ctx, rejected))
		return nil
	})
	require.NoError(t, err)

	err = db.InTx(ctx, func(tx *postgres.Tx) error {
		require.Equal(t, 4, reserve(tx), "the savepoints kept were committed, and only they")
		return refused
	})
	require.ErrorIs(t, err, refused)
	require.NoError(t, db.InTx(ctx, func(tx *postgres.Tx) error {
		require.Equal(t, 4, reserve(tx), "a transaction that failed is rolled back")
		return nil
	}))
	require.NoError(t, db.InTx(ctx, func(*postgres.Tx) error { return nil }))
}

// TestHeldStarts starts steps under leases the transaction locked, whose
// statements are held to go with the next one: the start is there for the
// statements that follow and in the history, and one that the database
// refuses makes the whole transaction fail, even when the statement it
// went with failed inside a savepoint that the caller got over.
func TestHeldStarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	runID := uuid.New()
	require.NoError(t, db.InTx(ctx, func(tx *postgres.Tx) error {
		v, _, err := tx.ReserveWorkflowVersion(ctx, "w", 0)
		require.NoError(t, err)
		_, err = tx.InsertWorkflowVersion(ctx, workflow.WorkflowVersion{Name: "w", Version: v, Definition: []byte(`{}`), Hash: []byte("h")}, "")
		require.NoError(t, err)
		_, ok, err := tx.InsertRun(ctx, postgres.NewRun{ID: runID, Workflow: "w", Version: v, Input: json.RawMessage(`{}`)})
		require.True(t, ok)
		require.NoError(t, err)
		return tx.EnqueueWork(ctx, runID, postgres.WorkTarget{Kind: postgres.WorkAdvance}, 0)
	}))
	var item postgres.WorkItem
	require.NoError(t, db.InTx(ctx, func(tx *postgres.Tx) error {
		items, err := tx.ClaimWork(ctx, "test", 1, time.Minute)
		require.Len(t, items, 1)
		item = items[0]
		return err
	}))
	start := func(key, input string) postgres.StepStart {
		id := uuid.New()
		return postgres.StepStart{Work: item, Lease: time.Minute, Exec: postgres.NewStepExecution{
			ID: id, Key: key, Name: key, Type: "call", WebhookID: "msg_" + id.String(), Input: json.RawMessage(input), Timeout: time.Minute,
		}}
	}

	require.NoError(t, db.InTx(ctx, func(tx *postgres.Tx) error {
		ok, err := tx.LockLeasedWork(ctx, item)
		require.True(t, ok)
		require.NoError(t, err)
		started, err := tx.StartSteps(ctx, []postgres.StepStart{start("a", `{}`)})
		require.NoError(t, err)
		require.Equal(t, []bool{true}, started)
		exec, err := tx.GetStepExecutionByKey(ctx, runID, "a")
		require.NoError(t, err, "the held start went first")
		require.Equal(t, "running", exec.Status)
		return nil
	}))
	history, err := db.ListHistory(ctx, runID, 0, 10)
	require.NoError(t, err)
	require.Len(t, history, 1)
	require.Equal(t, workflow.EventStepStarted, history[0].Type)
	require.Equal(t, "a", history[0].StepKey)

	err = db.InTx(ctx, func(tx *postgres.Tx) error {
		ok, err := tx.LockLeasedWork(ctx, item)
		require.True(t, ok)
		require.NoError(t, err)
		_, err = tx.StartSteps(ctx, []postgres.StepStart{start("b", `{"nul": "\u0000"}`)})
		require.NoError(t, err, "held: the refusal comes later")
		require.Error(t, tx.Savepoint(ctx, func(sp *postgres.Tx) error {
			_, _, err := sp.ReserveWorkflowVersion(ctx, "w", 0)
			return err
		}))
		_, _, err = tx.ReserveWorkflowVersion(ctx, "w", 0)
		require.Error(t, err, "the transaction failed with the held start")
		return nil
	})
	require.Error(t, err)
	_, err = db.GetStepExecutionByKey(ctx, runID, "b")
	require.True(t, fault.Is(err, fault.NotFound), "%v", err)
	require.NoError(t, db.InTx(ctx, func(tx *postgres.Tx) error {
		v, _, err := tx.ReserveWorkflowVersion(ctx, "w", 0)
		require.Equal(t, 2, v, "nothing of the failed transaction was kept")
		return err
	}))
}
