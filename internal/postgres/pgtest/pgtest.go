// Package pgtest gives each test its own migrated PostgreSQL database,
// cloned from a template database that is built once per schema version, so
// tests run in parallel against the real thing in milliseconds.
//
// The server is the one at DURABLE_TEST_DATABASE_URL, or DATABASE_URL, or
// the local default; `make test` makes sure one is running.
package pgtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"

	"github.com/durablehq/durable/db/migrations"
	"github.com/durablehq/durable/internal/postgres"
)

// DefaultURL is the server tests use when no environment variable names one.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ServerURL returns the URL of the server tests run against.
func ServerURL() string {
	for _, k := range []string{"DURABLE_TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return DefaultURL
}

// migrator builds pgtestdb templates from Durable's embedded migrations.
type migrator struct{}

// Hash identifies the schema by the content of every migration file, so a
// changed migration gets a fresh template.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func (migrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	_, err := postgres.MigrateSQL(ctx, db)
	return err
}

// serverConfig describes the test server to pgtestdb.
func serverConfig(t testing.TB) pgtestdb.Config {
	t.Helper()
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("parse test database url: %v", err)
	}
	password, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return pgtestdb.Config{
		DriverName: "pgx", Host: u.Hostname(), Port: port, User: u.User.Username(), Password: password,
		Database: "postgres", Options: "sslmode=disable",
		// A test that fails midway may leave connections open; the database
		// must still be dropped.
		ForceTerminateConnections: true,
	}
}

// URL creates a fresh migrated database for the test and returns its URL.
// The database is dropped when the test passes, and kept for inspection
// when it fails.
func URL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), migrator{}).URL()
}

// EmptyURL creates a fresh database without any migration applied and
// returns its URL, for tests of start-up itself.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), pgtestdb.NoopMigrator{}).URL()
}

// New opens a fresh migrated database for the test, closed when it ends.
func New(t testing.TB) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), URL(t), 0)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}
