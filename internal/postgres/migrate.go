package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/durablehq/durable/db/migrations"
)

// codeDuplicateDatabase is what CREATE DATABASE answers when another process
// created the same database first.
const codeDuplicateDatabase = "42P04"

// EnsureDatabase creates the database named in url if it does not exist,
// connecting to the server's "postgres" maintenance database to do so.
// Several processes may call it at once.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("connect to database %q: %w", name, err)
	}
	cfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to maintenance database to create %q: %w", name, err)
	}
	defer func() { _ = admin.Close(context.WithoutCancel(ctx)) }()
	// CREATE DATABASE takes no parameters; the name is quoted as an identifier.
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	// A concurrent CREATE DATABASE of the same name fails with
	// duplicate_database, or with a unique violation on pg_database when
	// both passed the existence check at once.
	if err != nil && !(errors.As(err, &pgErr) && (pgErr.Code == codeDuplicateDatabase || pgErr.Code == codeUniqueViolation)) {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// newMigrationProvider returns a goose provider over the embedded migrations
// that takes PostgreSQL's advisory lock while it works, so processes starting
// together apply each migration once.
func newMigrationProvider(db *sql.DB) (*goose.Provider, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return p, nil
}

// MigrateSQL applies every pending migration through db.
func MigrateSQL(ctx context.Context, db *sql.DB) (applied []string, err error) {
	p, err := newMigrationProvider(db)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// Migrate applies every pending migration and returns the files it applied.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	return MigrateSQL(ctx, sqlDB)
}

// MigrationsPending reports whether migrations embedded in this binary have
// not been applied to the database yet.
func (db *DB) MigrationsPending(ctx context.Context) (bool, error) {
	sqlDB := stdlib.OpenDBFromPool(db.pool)
	defer sqlDB.Close()
	p, err := newMigrationProvider(sqlDB)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return pending, nil
}

// Redact returns databaseURL with its password replaced, fit for a log line.
func Redact(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil || u.User == nil {
		if strings.Contains(databaseURL, "password") {
			return "(connection string with password)"
		}
		return databaseURL
	}
	return u.Redacted()
}

// OpenMigrated is how a Durable process starts on its database: it creates
// the database if it is missing, connects (see [Open]), and applies pending
// migrations under the migration lock, logging what it did.
func OpenMigrated(ctx context.Context, databaseURL string, maxConns int, logger *slog.Logger) (*DB, error) {
	if err := EnsureDatabase(ctx, databaseURL); err != nil {
		return nil, err
	}
	db, err := Open(ctx, databaseURL, maxConns)
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, m := range applied {
		logger.InfoContext(ctx, "migration applied", "file", m)
	}
	logger.InfoContext(ctx, "database ready", "url", Redact(databaseURL))
	return db, nil
}
