package postgres_test

import (
	"context"
	"errors"
	"testing"

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
		v, err := tx.ReserveWorkflowVersion(ctx, "w")
		require.NoError(t, err)
		return v
	}
	refused := errors.New("refused")
	rejected := func(tx *postgres.Tx) error {
		_, err := tx.InsertWorkflowVersion(ctx, workflow.WorkflowVersion{Name: "ghost", Version: 1, Definition: []byte(`{}`), Hash: []byte("h")})
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
