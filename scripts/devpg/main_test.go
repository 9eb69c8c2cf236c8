package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestEnsureExistingServer runs against the PostgreSQL of DATABASE_URL (by
// default the local one at 127.0.0.1:5432): a missing database is created
// once, and later calls, concurrent ones included, find it.
func TestEnsureExistingServer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	base, err := url.Parse(cmp.Or(os.Getenv("DATABASE_URL"), defaultDatabaseURL))
	if err != nil || (base.Scheme != "postgres" && base.Scheme != "postgresql") {
		t.Skipf("DATABASE_URL is not a postgres:// URL (%v)", err)
	}
	admin := connectAdmin(t, base.String())
	if admin == nil {
		t.Fatalf("no PostgreSQL answers at %s: start one, or run `go run ./scripts/devpg` first", base.Host)
	}

	// Names that need quoting: a space, capitals and a double quote.
	stamp := time.Now().UnixNano()
	single := fmt.Sprintf(`devpg test "One" %d`, stamp)
	racy := fmt.Sprintf(`devpg test "Race" %d`, stamp)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range []string{single, racy} {
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %q: %v", name, err)
			}
		}
		admin.Close(ctx)
	})
	dataDir := filepath.Join(t.TempDir(), "postgres") // must stay unused

	opts := options{databaseURL: withDatabase(base, single), dataDir: dataDir}
	var out bytes.Buffer
	rep, err := ensure(ctx, opts, &out)
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	t.Logf("first call: %s", out.String())
	if rep != (report{CreatedDatabase: true}) {
		t.Errorf("first call: report = %+v, want the database created on the running server", rep)
	}
	if !strings.Contains(out.String(), "using PostgreSQL") || !strings.Contains(out.String(), "created database") {
		t.Errorf("first call: output %q does not say it used the server and created the database", out.String())
	}
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", single).Scan(&exists); err != nil || !exists {
		t.Fatalf("database %q exists = %v, %v; want true", single, exists, err)
	}

	out.Reset()
	rep, err = ensure(ctx, opts, &out)
	if err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	if rep != (report{}) || !strings.Contains(out.String(), "exists") {
		t.Errorf("second call: report = %+v, output %q; want a no-op that says the database exists", rep, out.String())
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data directory %s was touched although a server answers (stat: %v)", dataDir, err)
	}

	// Several processes racing to create the same database all succeed, and
	// exactly one of them creates it.
	const racers = 4
	var wg sync.WaitGroup
	reports := make([]report, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			reports[i], errs[i] = ensure(ctx, options{databaseURL: withDatabase(base, racy), dataDir: dataDir}, &bytes.Buffer{})
		})
	}
	wg.Wait()
	created := 0
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("racer %d: %v", i, errs[i])
		}
		if reports[i].CreatedDatabase {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d racers created the database, want 1", created)
	}
}

// TestDropTestDatabases drops the databases of a prefix, templates
// included, and keeps one in use and those of other names. Its prefix is
// its own, so that it never touches the databases of tests running now.
func TestDropTestDatabases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base, err := url.Parse(cmp.Or(os.Getenv("DATABASE_URL"), defaultDatabaseURL))
	if err != nil || (base.Scheme != "postgres" && base.Scheme != "postgresql") {
		t.Skipf("DATABASE_URL is not a postgres:// URL (%v)", err)
	}
	admin := connectAdmin(t, base.String())
	if admin == nil {
		t.Fatalf("no PostgreSQL answers at %s: start one, or run `go run ./scripts/devpg` first", base.Host)
	}
	prefix := fmt.Sprintf(`devpg drop "T" %d `, time.Now().UnixNano())
	template, leftover, inUse, other := prefix+"tpl", prefix+"tpl_inst_1", prefix+"busy", "other "+prefix
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range []string{template, leftover, inUse, other} {
			ident := pgx.Identifier{name}.Sanitize()
			_, _ = admin.Exec(ctx, "ALTER DATABASE "+ident+" IS_TEMPLATE false")
			if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %q: %v", name, err)
			}
		}
		admin.Close(ctx)
	})
	for _, name := range []string{template, leftover, inUse, other} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatalf("create database %q: %v", name, err)
		}
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{template}.Sanitize()+" IS_TEMPLATE true"); err != nil {
		t.Fatal(err)
	}
	busy, err := pgx.Connect(ctx, withDatabase(base, inUse))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(context.WithoutCancel(ctx))

	var out bytes.Buffer
	if err := dropTestDatabases(ctx, options{databaseURL: base.String()}, prefix, &out); err != nil {
		t.Fatalf("dropTestDatabases: %v", err)
	}
	t.Log(out.String())
	if !strings.Contains(out.String(), "dropped 2 of 3 test databases") || !strings.Contains(out.String(), "kept "+inUse+": it is in use") {
		t.Errorf("output %q does not say two were dropped and the busy one kept", out.String())
	}
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname", []string{template, leftover, inUse, other})
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{inUse, other}; !slices.Equal(left, want) {
		t.Errorf("databases left = %q, want %q", left, want)
	}
}

// TestEnsureStartsThrowawayCluster starts a throwaway cluster where nothing
// listens, checks that it serves the database, and stops it.
func TestEnsureStartsThrowawayCluster(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if _, err := findBinDir(); err != nil {
		t.Skipf("no PostgreSQL server binaries: %v", err)
	}

	// Not t.TempDir: when the test runs as root, the server runs as the
	// postgres OS user, which must be able to enter the directory.
	dir, err := os.MkdirTemp("", "devpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	dbURL := fmt.Sprintf("postgres://devpg_owner@127.0.0.1:%d/devpg-db?sslmode=disable", port)
	opts := options{databaseURL: dbURL, dataDir: filepath.Join(dir, "postgres")}
	t.Cleanup(func() { // runs before the RemoveAll above
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stop(ctx, opts, &bytes.Buffer{}); err != nil {
			t.Errorf("stop in cleanup: %v", err)
		}
	})

	var out bytes.Buffer
	rep, err := ensure(ctx, opts, &out)
	t.Logf("ensure output:\n%s", out.String())
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	if rep != (report{StartedCluster: true, CreatedDatabase: true}) {
		t.Errorf("report = %+v, want a started cluster and a created database", rep)
	}
	for _, want := range []string{"throwaway", opts.dataDir, "make db-stop", "pg_ctl"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not mention %q", want)
		}
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the throwaway cluster: %v", err)
	}
	var database, role string
	err = conn.QueryRow(ctx, "SELECT current_database(), current_user").Scan(&database, &role)
	conn.Close(ctx)
	if err != nil || database != "devpg-db" || role != "devpg_owner" {
		t.Fatalf("connected as %q to %q (err %v), want devpg_owner to devpg-db", role, database, err)
	}

	out.Reset()
	rep, err = ensure(ctx, opts, &out)
	if err != nil || rep != (report{}) {
		t.Errorf("second ensure: report = %+v, err = %v; want the running cluster used as is", rep, err)
	}

	out.Reset()
	if err := stop(ctx, opts, &out); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("stop output %q does not say it stopped the cluster", out.String())
	}
	if conn, err := pgx.Connect(ctx, dbURL); err == nil {
		conn.Close(ctx)
		t.Errorf("the cluster still answers after stop")
	} else if !nothingAnswers(err) {
		t.Errorf("connect after stop: %v, want connection refused", err)
	}

	out.Reset()
	if err := stop(ctx, opts, &out); err != nil || !strings.Contains(out.String(), "not running") {
		t.Errorf("second stop: err = %v, output %q; want a no-op", err, out.String())
	}
}

// TestEnsureRefusesRemoteHost checks that no cluster is started in place of a
// remote server that does not answer.
func TestEnsureRefusesRemoteHost(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "postgres")
	// 192.0.2.1 is TEST-NET-1: nothing answers there.
	opts := options{databaseURL: "postgres://postgres@192.0.2.1:5432/durable?sslmode=disable", dataDir: dataDir}
	if _, err := ensure(t.Context(), opts, &bytes.Buffer{}); err == nil {
		t.Fatal("ensure succeeded against an unreachable remote host")
	} else {
		t.Logf("ensure: %v", err)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data directory %s was created for a remote host (stat: %v)", dataDir, err)
	}
}

func TestIsLocalHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"127.0.0.1":           true,
		"127.0.0.2":           true,
		"::1":                 true,
		"localhost":           true,
		"LOCALHOST":           true,
		"/var/run/postgresql": true,
		"/tmp":                true,
		"10.0.0.5":            false,
		"192.0.2.1":           false,
		"db.example.com":      false,
		"postgres":            false,
		"localhost.evil.com":  false,
	} {
		if got := isLocalHost(host); got != want {
			t.Errorf("isLocalHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"15.8 (Debian 15.8-1.pgdg120+1)", 15},
		{"PostgreSQL 17.2", 17},
		{"pg_ctl (PostgreSQL) 9.6.24", 9},
		{"18beta1", 18},
	} {
		if got, ok := majorVersion(tc.s); !ok || got != tc.want {
			t.Errorf("majorVersion(%q) = %d, %v; want %d", tc.s, got, ok, tc.want)
		}
	}
	// Directory versions compare as numbers: 16 > 15 > 9.6, and "latest" is
	// no version.
	ordered := []string{"", "9.6", "15", "16", "16.2"}
	for i := 1; i < len(ordered); i++ {
		lo, hi := versionKey(ordered[i-1]), versionKey(ordered[i])
		if slices.Compare(lo, hi) >= 0 {
			t.Errorf("versionKey(%q) = %v is not below versionKey(%q) = %v", ordered[i-1], lo, ordered[i], hi)
		}
	}
	if k := versionKey("latest"); len(k) != 0 {
		t.Errorf("versionKey(latest) = %v, want none", k)
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	for _, s := range []string{"plain", "", "with space", "it's", `"double" $HOME \ *`, "::1", "-c listen_addresses=''"} {
		out, err := exec.Command(sh, "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh -c 'printf %%s %s' = %q, %v; want %q", shellQuote(s), out, err, s)
		}
	}
}

// connectAdmin connects to the maintenance database of the server at
// rawURL, or returns nil if that fails.
func connectAdmin(t *testing.T, rawURL string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	cfg.Database = "postgres"
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Logf("connect: %v", err)
		return nil
	}
	return conn
}

func withDatabase(base *url.URL, name string) string {
	u := *base
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// freePort returns a TCP port on 127.0.0.1 where nothing listens.
func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return uint16(port)
}
