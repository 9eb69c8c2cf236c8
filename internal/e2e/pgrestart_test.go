package e2e_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// cluster is a PostgreSQL server of the test's own, in a temporary
// directory, that the test may crash and restart: the shared server must
// not be.
type cluster struct {
	t       *testing.T
	bin     string
	dir     string
	port    int
	runAs   string // the OS user the server runs as, when the test runs as root
	options string
}

// newCluster initializes and starts a throwaway cluster; it is stopped and
// removed when the test ends. The test is skipped when PostgreSQL's server
// binaries are not installed.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	if initdb, err := exec.LookPath("initdb"); err == nil {
		candidates = append([]string{filepath.Dir(initdb)}, candidates...)
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			c.bin = dir
			break
		}
	}
	if c.bin == "" {
		t.Skip("PostgreSQL's server binaries (initdb, pg_ctl) are not installed")
	}
	var err error
	c.dir, err = os.MkdirTemp("", "durable-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(c.dir) })
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		c.runAs = "postgres"
		u, err := user.Lookup(c.runAs)
		require.NoError(t, err, "running as root needs a postgres OS user")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(c.dir, uid, gid))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// The server is crashed on purpose; fsync matters only when the machine
	// is, and the test is faster without it.
	c.options = fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c max_connections=100", c.port, c.dir)
	c.run("initdb", "-D", c.data(), "--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync")
	c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.data(), "-l", c.dir+"/log", "-o", c.options)
	t.Cleanup(func() { c.run("pg_ctl", "stop", "-m", "immediate", "-D", c.data()) })
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) run(name string, args ...string) {
	c.t.Helper()
	argv := append([]string{filepath.Join(c.bin, name)}, args...)
	if c.runAs != "" {
		argv = append([]string{"runuser", "-u", c.runAs, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	require.NoError(c.t, err, "%s: %s", strings.Join(argv, " "), out)
}

// restart crashes the server (every backend killed at once, no checkpoint)
// and starts it again, which recovers from the write-ahead log.
func (c *cluster) restart() {
	c.t.Helper()
	c.run("pg_ctl", "restart", "-w", "-t", "60", "-m", "immediate", "-D", c.data(), "-l", c.dir+"/log", "-o", c.options)
}

// database creates a database on the cluster and returns its URL.
func (c *cluster) database(name string) string {
	c.t.Helper()
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", c.port)
	conn, err := pgx.Connect(context.Background(), base+"postgres?sslmode=disable")
	require.NoError(c.t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "CREATE DATABASE "+name)
	require.NoError(c.t, err)
	return base + name + "?sslmode=disable"
}

// TestPostgresRestarts crashes and restarts PostgreSQL three times while
// 500 runs of 10 steps execute: every run succeeds, and every step's
// result is recorded exactly once (steps may be called again; that is
// at-least-once delivery, with the same webhook-id).
func TestPostgresRestarts(t *testing.T) {
	t.Parallel()
	const runs, steps = 500, 10
	pg := newCluster(t)
	var mu sync.Mutex
	calls := map[string]int{} // webhook-id → requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("webhook-id")]++
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		writeJSON(w, http.StatusOK, map[string]any{"output": map[string]any{"step": r.URL.Path}})
	}))
	t.Cleanup(srv.Close)

	e := newEnvOn(t, pg.database("durable"), "DURABLE_DB_MAX_CONNS=16")
	var def strings.Builder
	def.WriteString(`{"name": "restarts", "steps": [`)
	for i := range steps {
		if i > 0 {
			def.WriteString(",")
		}
		fmt.Fprintf(&def, `{"name": "s%d", "type": "call", "url": "%s/s%d", "retry": {"initial_interval": "100ms"}}`, i, srv.URL, i)
	}
	def.WriteString(`]}`)
	e.createWorkflow(def.String())
	workers := []*proc{e.startWorker(), e.startWorker()}

	ids := make([]uuid.UUID, runs)
	for i := range ids {
		ids[i] = e.startRun("restarts", map[string]any{"i": i})
	}
	// Each run takes about 2 s; the crashes come while they are in flight.
	for range 3 {
		time.Sleep(700 * time.Millisecond)
		pg.restart()
	}
	for _, id := range ids {
		r := e.waitRun(id, 3*time.Minute)
		require.Equal(t, "succeeded", string(r.Status), "run %s: %s", id, runErrorText(r))
	}

	db := assertDB(t, e)
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM step_executions WHERE status = 'succeeded'`))
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_succeeded'`), "a step's result was recorded twice")
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM (SELECT run_id, step_key FROM history_events WHERE type = 'step_succeeded' GROUP BY 1, 2 HAVING count(*) <> 1) twice`))
	require.Equal(t, runs*steps, dbCount(t, db, `SELECT count(*) FROM step_attempts WHERE status = 'succeeded'`))
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM work_items`), "work left behind")
	// A step abandoned is a step whose worker lost track of it: with every
	// result recorded through the crashes, none is.
	require.Equal(t, 0, dbCount(t, db, `SELECT count(*) FROM history_events WHERE type = 'step_abandoned'`))
	again := 0
	mu.Lock()
	for _, n := range calls {
		again += n - 1
	}
	mu.Unlock()
	retried := 0
	for _, w := range workers {
		retried += w.count("recording a result failed; trying again until the lease ends")
	}
	require.Positive(t, retried, "no crash came while a result was being recorded")
	t.Logf("%d runs × %d steps through 3 crashes of PostgreSQL: %d results recorded after the database failed, %d step requests made again", runs, steps, retried, again)
}
