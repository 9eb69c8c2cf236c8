// Package migrations embeds Durable's PostgreSQL schema as goose migrations.
// Migrations are numbered, applied by the programs at start-up, and never
// edited once released: a change is a new file.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
