// Command devpg makes sure a PostgreSQL server and the project's database are
// there, so that `make run` and `make test` need no setup on a machine with
// only Go and PostgreSQL installed.
//
// It reads DATABASE_URL (or -database-url) and connects to the maintenance
// database "postgres" on that server. When a server answers, devpg creates the
// target database if it is missing and exits. When nothing answers at a local
// address (loopback or a unix socket directory), devpg initializes and starts
// a throwaway cluster under -data-dir (default .data/postgres) with the
// PostgreSQL server binaries it finds, then creates the database there. It
// never starts a cluster in place of a remote host.
//
// With -stop, devpg stops the throwaway cluster under -data-dir, if one runs.
//
// With -drop-test-databases, devpg drops the databases that the tests'
// pgtestdb leaves on the server of -database-url: the template databases
// (testdb_tpl_<hash>), kept so that the next run skips the migrations, and
// the databases of failed tests (testdb_tpl_<hash>_inst_<id>), kept for
// inspection. A database in use is left alone.
//
// PostgreSQL refuses to run as root. When devpg runs as root, it runs initdb
// and pg_ctl as the "postgres" OS user (with runuser, or su) and gives that
// user the data directory.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/durable?sslmode=disable"
	defaultDataDir     = ".data/postgres"

	// minMajorVersion is the oldest PostgreSQL that Durable supports.
	minMajorVersion = 15

	connectTimeout  = 2 * time.Second
	connectAttempts = 4
	connectDelay    = 250 * time.Millisecond

	// serverUser is the OS user that runs the throwaway cluster when devpg
	// runs as root.
	serverUser = "postgres"

	// maxSocketPath is the longest unix socket path that every platform
	// accepts (sun_path is 104 bytes on macOS, 108 on Linux, with the NUL).
	maxSocketPath = 103
)

// SQLSTATE codes that devpg handles.
const (
	codeDuplicateDatabase     = "42P04"
	codeUniqueViolation       = "23505"
	codeInsufficientPrivilege = "42501"
	codeCannotConnectNow      = "57P03"
	codeTooManyConnections    = "53300"
	codeObjectInUse           = "55006"
	codeInvalidCatalogName    = "3D000"
)

// binDirGlobs are where PostgreSQL server binaries live when they are not on
// PATH; the "*" is the version. Debian and Ubuntu first, the case that
// matters most.
var binDirGlobs = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/opt/homebrew/opt/postgresql@*/bin",
	"/usr/local/opt/postgresql@*/bin",
	"/Applications/Postgres.app/Contents/Versions/*/bin",
}

func main() {
	var (
		databaseURL = flag.String("database-url", "", "PostgreSQL connection string (default $DATABASE_URL, else "+defaultDatabaseURL+")")
		dataDir     = flag.String("data-dir", defaultDataDir, "directory of the throwaway cluster devpg starts when no local server answers")
		stopCluster = flag.Bool("stop", false, "stop the throwaway cluster under -data-dir, if one is running")
		dropTests   = flag.Bool("drop-test-databases", false, "drop the databases the tests leave on the server ("+testDatabasePrefix+"*), except those in use, and exit")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: devpg [-database-url URL] [-data-dir DIR] [-stop | -drop-test-databases]\n\n"+
			"devpg makes sure a PostgreSQL server and the database of DATABASE_URL exist,\n"+
			"starting a throwaway cluster under -data-dir when no local server answers.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}

	opts := options{databaseURL: *databaseURL, dataDir: *dataDir}
	if opts.databaseURL == "" {
		opts.databaseURL = os.Getenv("DATABASE_URL")
	}
	if opts.databaseURL == "" {
		opts.databaseURL = defaultDatabaseURL
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	switch {
	case *stopCluster:
		err = stop(ctx, opts, os.Stderr)
	case *dropTests:
		err = dropTestDatabases(ctx, opts, testDatabasePrefix, os.Stderr)
	default:
		_, err = ensure(ctx, opts, os.Stderr)
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devpg: %v\n", err)
		os.Exit(1)
	}
}

// options are devpg's inputs, resolved from flags and the environment.
type options struct {
	databaseURL string
	dataDir     string // may be relative to the working directory
}

// report says what [ensure] found and did.
type report struct {
	StartedCluster  bool // no server answered, so devpg started the throwaway cluster
	CreatedDatabase bool // the database was missing and devpg created it
}

// ensure makes sure a server answers at opts.databaseURL and that the URL's
// database exists there, starting the throwaway cluster under opts.dataDir
// when nothing answers at a local address. It writes what it did to w.
func ensure(ctx context.Context, opts options, w io.Writer) (report, error) {
	cfg, err := pgx.ParseConfig(opts.databaseURL)
	if err != nil {
		return report{}, fmt.Errorf("parse database URL: %w", err)
	}
	database := cfg.Database
	if database == "" {
		database = cfg.User // what the server assumes, as libpq does
	}
	where := serverAddress(cfg.Host, cfg.Port)

	conn, err := connectMaintenance(ctx, cfg)
	if err == nil {
		defer conn.Close(context.WithoutCancel(ctx))
		version, err := checkServerVersion(conn, where)
		if err != nil {
			return report{}, err
		}
		created, err := ensureDatabase(ctx, conn, database, cfg.User)
		if err != nil {
			return report{}, err
		}
		fmt.Fprintf(w, "devpg: using PostgreSQL %s at %s (%s)\n", version, where, databaseState(database, created))
		return report{CreatedDatabase: created}, nil
	}
	if !nothingAnswers(err) {
		return report{}, fmt.Errorf("connect to PostgreSQL at %s: %w", where, err)
	}
	if !isLocalHost(cfg.Host) {
		return report{}, fmt.Errorf("no PostgreSQL answers at %s, a remote host; devpg starts a throwaway cluster only for a local address (127.0.0.1, ::1, localhost or a unix socket directory): start that server or point DATABASE_URL elsewhere: %w", where, err)
	}

	c, err := newCluster(ctx, opts.dataDir)
	if err != nil {
		return report{}, fmt.Errorf("no PostgreSQL answers at %s, and devpg cannot start a throwaway cluster: %w", where, err)
	}
	initialized, err := c.start(ctx, cfg.Host, cfg.Port, cfg.User, where)
	if err != nil {
		return report{}, err
	}

	conn, err = connectMaintenance(ctx, cfg)
	if err != nil {
		return report{}, fmt.Errorf("connect to the throwaway cluster at %s (log: %s): %w", where, c.logFile, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	created, err := ensureDatabase(ctx, conn, database, cfg.User)
	if err != nil {
		return report{}, err
	}
	c.announce(w, where, cfg.User, initialized, databaseState(database, created))
	return report{StartedCluster: true, CreatedDatabase: created}, nil
}

// stop stops the throwaway cluster under opts.dataDir if it is running, and
// does nothing otherwise.
func stop(ctx context.Context, opts options, w io.Writer) error {
	dataDir, err := filepath.Abs(opts.dataDir)
	if err != nil {
		return fmt.Errorf("resolve data directory: %w", err)
	}
	if !isCluster(dataDir) {
		fmt.Fprintf(w, "devpg: no throwaway cluster under %s; nothing to stop\n", dataDir)
		return nil
	}
	c, err := newCluster(ctx, dataDir)
	if err != nil {
		return fmt.Errorf("stop the throwaway cluster under %s: %w", dataDir, err)
	}
	running, err := c.running(ctx)
	if err != nil {
		return err
	}
	if !running {
		fmt.Fprintf(w, "devpg: the throwaway cluster under %s is not running; nothing to stop\n", dataDir)
		return nil
	}
	if err := c.run(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", c.dataDir); err != nil {
		return fmt.Errorf("stop the throwaway cluster under %s: %w", dataDir, err)
	}
	fmt.Fprintf(w, "devpg: stopped the throwaway cluster under %s\n", dataDir)
	return nil
}

// testDatabasePrefix starts the names of the databases pgtestdb makes.
const testDatabasePrefix = "testdb_tpl_"

// dropTestDatabases drops the databases whose names start with prefix on
// the server of opts.databaseURL, templates included, and says what it
// dropped and kept to w. A database someone is connected to — a test
// running now, or its template being cloned — is kept: its connections are
// not ended.
func dropTestDatabases(ctx context.Context, opts options, prefix string, w io.Writer) error {
	cfg, err := pgx.ParseConfig(opts.databaseURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	where := serverAddress(cfg.Host, cfg.Port)
	conn, err := connectMaintenance(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", where, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname", prefix)
	if err != nil {
		return fmt.Errorf("list test databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list test databases: %w", err)
	}
	dropped := 0
	for _, name := range names {
		ident := pgx.Identifier{name}.Sanitize()
		// PostgreSQL refuses to drop a template database.
		_, err := conn.Exec(ctx, "ALTER DATABASE "+ident+" IS_TEMPLATE false")
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE "+ident)
		}
		switch {
		case err == nil:
			dropped++
		case hasCode(err, codeObjectInUse):
			fmt.Fprintf(w, "devpg: kept %s: it is in use\n", name)
		case hasCode(err, codeInvalidCatalogName):
			// Dropped by someone else meanwhile.
		default:
			return fmt.Errorf("drop test database %s: %w", name, err)
		}
	}
	fmt.Fprintf(w, "devpg: dropped %d of %d test databases (%s*) at %s\n", dropped, len(names), prefix, where)
	return nil
}

// connectMaintenance connects to the maintenance database "postgres" of the
// server that cfg names, retrying briefly while the server may be starting.
func connectMaintenance(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	mcfg := cfg.Copy()
	mcfg.Database = "postgres"
	mcfg.ConnectTimeout = connectTimeout
	mcfg.RuntimeParams["application_name"] = "devpg"
	for attempt := 1; ; attempt++ {
		conn, err := pgx.ConnectConfig(ctx, mcfg)
		if err == nil {
			return conn, nil
		}
		if attempt == connectAttempts || ctx.Err() != nil || !isTransient(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(connectDelay):
		}
	}
}

// checkServerVersion returns the version of the server conn is connected to,
// and an error if it is older than [minMajorVersion].
func checkServerVersion(conn *pgx.Conn, where string) (string, error) {
	version, _, _ := strings.Cut(conn.PgConn().ParameterStatus("server_version"), " ")
	if major, ok := majorVersion(version); ok && major < minMajorVersion {
		return "", fmt.Errorf("PostgreSQL %s at %s is too old: Durable needs PostgreSQL %d or later", version, where, minMajorVersion)
	}
	return version, nil
}

// ensureDatabase creates the database name unless it exists, and reports
// whether it created it. Another process creating it at the same time is
// fine: the database exists either way.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, name, role string) (created bool, err error) {
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return false, nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	switch {
	case err == nil:
		return true, nil
	case hasCode(err, codeDuplicateDatabase, codeUniqueViolation):
		// Created concurrently, between our look-up and our CREATE.
		return false, nil
	case hasCode(err, codeInsufficientPrivilege):
		return false, fmt.Errorf("create database %q: role %q may not create databases; create it yourself or grant the role CREATEDB: %w", name, role, err)
	default:
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
}

func databaseState(name string, created bool) string {
	if created {
		return fmt.Sprintf("created database %q", name)
	}
	return fmt.Sprintf("database %q exists", name)
}

// nothingAnswers reports whether err says that no server listens at the
// address (connection refused, or no such unix socket), as opposed to a
// server that answered with an error or a network that did not answer.
func nothingAnswers(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// isTransient reports whether a failed connection attempt is worth
// repeating soon: nothing listens yet, the server is starting, or it is busy.
// A timeout is not: it has waited long enough.
func isTransient(err error) bool {
	return nothingAnswers(err) || hasCode(err, codeCannotConnectNow, codeTooManyConnections)
}

// hasCode reports whether err is a PostgreSQL error with one of the codes.
func hasCode(err error, codes ...string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && slices.Contains(codes, pgErr.Code)
}

// isLocalHost reports whether host, as pgx parsed it, is this machine: a
// unix socket directory, "localhost" or a loopback address.
func isLocalHost(host string) bool {
	if isSocketDir(host) || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isSocketDir(host string) bool { return strings.HasPrefix(host, "/") }

func serverAddress(host string, port uint16) string {
	if isSocketDir(host) {
		return filepath.Join(host, fmt.Sprintf(".s.PGSQL.%d", port))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

var digits = regexp.MustCompile(`\d+`)

// majorVersion returns the first number in s: 15 for "15.8 (Debian …)" or
// "pg_ctl (PostgreSQL) 15.8".
func majorVersion(s string) (int, bool) {
	n, err := strconv.Atoi(digits.FindString(s))
	return n, err == nil
}

// cluster is the throwaway PostgreSQL cluster under a data directory.
type cluster struct {
	dataDir   string // absolute
	logFile   string // next to dataDir, so it survives a fresh initdb
	socketDir string // for TCP hosts; "" when the path would be too long
	binDir    string // where initdb and pg_ctl are
	version   string // of the binaries, as pg_ctl --version says it
	runAs     string // OS user that runs initdb and pg_ctl; "" for the current user
	uid, gid  int    // of runAs
}

// newCluster finds the server binaries and, when devpg runs as root, the OS
// user to run them as, for the cluster under dataDir.
func newCluster(ctx context.Context, dataDir string) (*cluster, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve data directory: %w", err)
	}
	c := &cluster{
		dataDir:   dataDir,
		logFile:   filepath.Join(filepath.Dir(dataDir), "postgres.log"),
		socketDir: filepath.Join(filepath.Dir(dataDir), "socket"),
	}

	c.binDir, err = findBinDir()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_ctl"), "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("run %s --version: %w", filepath.Join(c.binDir, "pg_ctl"), err)
	}
	c.version = strings.Replace(strings.TrimSpace(string(out)), "pg_ctl (PostgreSQL)", "PostgreSQL", 1)
	if major, ok := majorVersion(c.version); ok && major < minMajorVersion {
		return nil, fmt.Errorf("the PostgreSQL server binaries in %s are too old (%s): install PostgreSQL %d or later, or set DATABASE_URL to a server you run", c.binDir, c.version, minMajorVersion)
	}

	if os.Geteuid() == 0 {
		u, err := user.Lookup(serverUser)
		if err != nil {
			return nil, fmt.Errorf("devpg runs as root, PostgreSQL refuses to run as root, and there is no %q OS user to run it as (%w): run devpg as a regular user, create that user (useradd --system %s), or set DATABASE_URL to a server you run", serverUser, err, serverUser)
		}
		c.runAs = u.Username
		if c.uid, err = strconv.Atoi(u.Uid); err != nil {
			return nil, fmt.Errorf("uid of OS user %q: %w", serverUser, err)
		}
		if c.gid, err = strconv.Atoi(u.Gid); err != nil {
			return nil, fmt.Errorf("gid of OS user %q: %w", serverUser, err)
		}
	}
	return c, nil
}

// findBinDir returns the directory holding both initdb and pg_ctl: the one on
// PATH, else the highest version under [binDirGlobs].
func findBinDir() (string, error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(initdb)
		if isExecutable(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	var best string
	var bestVersion []int
	for _, pattern := range binDirGlobs {
		matches, _ := filepath.Glob(pattern) // the patterns are well-formed
		prefix := pattern[:strings.Index(pattern, "*")]
		for _, dir := range matches {
			if !isExecutable(filepath.Join(dir, "initdb")) || !isExecutable(filepath.Join(dir, "pg_ctl")) {
				continue
			}
			v := versionKey(strings.TrimPrefix(dir, prefix))
			if best == "" || slices.Compare(v, bestVersion) > 0 {
				best, bestVersion = dir, v
			}
		}
	}
	if best == "" {
		return "", fmt.Errorf("no PostgreSQL server binaries (initdb and pg_ctl) on PATH or under %s: install PostgreSQL %d or later (for example apt-get install postgresql, dnf install postgresql-server, brew install postgresql@17), or set DATABASE_URL to a server you run", strings.Join(binDirGlobs, ", "), minMajorVersion)
	}
	return best, nil
}

// versionKey turns the leading "16" or "9.6" of s into comparable numbers.
func versionKey(s string) []int {
	var key []int
	for part := range strings.SplitSeq(s, ".") {
		n := 0
		i := 0
		for ; i < len(part) && part[i] >= '0' && part[i] <= '9'; i++ {
			n = n*10 + int(part[i]-'0')
		}
		if i == 0 {
			break
		}
		key = append(key, n)
		if i < len(part) {
			break
		}
	}
	return key
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// isCluster reports whether dataDir holds an initialized cluster.
func isCluster(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return err == nil
}

// start initializes the cluster if needed and starts it listening on host
// and port, with user as its superuser. It reports whether it initialized a
// new cluster.
func (c *cluster) start(ctx context.Context, host string, port uint16, user, where string) (initialized bool, err error) {
	if err := c.prepareDirs(); err != nil {
		return false, fmt.Errorf("prepare the throwaway cluster under %s: %w", c.dataDir, err)
	}
	if !isCluster(c.dataDir) {
		// --locale=C matches every encoding, whatever the machine's locale;
		// --no-sync because the cluster is throwaway.
		err := c.run(ctx, "initdb", "-D", c.dataDir, "--auth=trust", "--username="+user,
			"--encoding=UTF8", "--locale=C", "--no-sync")
		if err != nil {
			return false, fmt.Errorf("initialize a throwaway cluster under %s: %w%s", c.dataDir, err, c.accessHint())
		}
		initialized = true
	}

	running, err := c.running(ctx)
	if err != nil {
		return initialized, err
	}
	if running {
		return initialized, fmt.Errorf("the throwaway cluster under %s is running but does not answer at %s (was DATABASE_URL changed?): stop it with %s, then try again", c.dataDir, where, c.stopCommand())
	}

	// pg_ctl hands -o to a shell, hence the quoting.
	serverOpts := []string{"-p", strconv.Itoa(int(port))}
	if isSocketDir(host) {
		serverOpts = append(serverOpts, "-c", "listen_addresses=''", "-k", shellQuote(host))
	} else {
		serverOpts = append(serverOpts, "-c", "listen_addresses="+shellQuote(host), "-k", shellQuote(c.socketDir))
	}
	err = c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir, "-l", c.logFile,
		"-o", strings.Join(serverOpts, " "))
	if err != nil {
		return initialized, fmt.Errorf("start the throwaway cluster under %s: %w%s", c.dataDir, err, logTail(c.logFile, 15))
	}
	return initialized, nil
}

// prepareDirs creates the directories the cluster needs and, when running as
// root, gives them to the server's OS user.
func (c *cluster) prepareDirs() error {
	if len(c.socketDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		c.socketDir = "" // no unix socket; TCP is what devpg uses
	}
	if err := os.MkdirAll(filepath.Dir(c.dataDir), 0o755); err != nil {
		return err
	}
	fresh := !isCluster(c.dataDir)
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return err
	}
	if c.socketDir != "" {
		if err := os.MkdirAll(c.socketDir, 0o700); err != nil {
			return err
		}
	}
	if c.runAs == "" {
		return nil
	}
	// The server's user cannot write next to the data directory, so the log
	// file is created here and handed over with the directories.
	f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	paths := []string{c.logFile}
	if fresh {
		paths = append(paths, c.dataDir)
	}
	if c.socketDir != "" {
		paths = append(paths, c.socketDir)
	}
	for _, p := range paths {
		if err := os.Chown(p, c.uid, c.gid); err != nil {
			return fmt.Errorf("give %s to OS user %q: %w", p, c.runAs, err)
		}
	}
	return nil
}

// running reports whether the cluster's server is running.
func (c *cluster) running(ctx context.Context) (bool, error) {
	err := c.run(ctx, "pg_ctl", "status", "-D", c.dataDir)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 3: // "no server running"
		return false, nil
	default:
		return false, fmt.Errorf("check the throwaway cluster under %s: %w", c.dataDir, err)
	}
}

// run runs a server binary (initdb or pg_ctl) as the cluster's OS user and
// returns an error that includes the command's output when it fails.
func (c *cluster) run(ctx context.Context, name string, args ...string) error {
	argv := c.asServerUser(append([]string{filepath.Join(c.binDir, name)}, args...))
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if c.runAs != "" {
		cmd.Dir = "/" // the server's user may not be able to enter ours
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%s %s: %w:\n%s", name, args[0], err, indent(msg))
		}
		return fmt.Errorf("%s %s: %w", name, args[0], err)
	}
	return nil
}

// asServerUser returns the command line that runs argv as the cluster's OS
// user: argv itself, or argv under runuser, or else under su.
func (c *cluster) asServerUser(argv []string) []string {
	if c.runAs == "" {
		return argv
	}
	if _, err := exec.LookPath("runuser"); err == nil {
		return append([]string{"runuser", "-u", c.runAs, "--"}, argv...)
	}
	return []string{"su", "-s", "/bin/sh", "-c", shellJoin(argv), c.runAs}
}

// stopCommand is the shell command that stops the cluster by hand.
func (c *cluster) stopCommand() string {
	argv := c.asServerUser([]string{filepath.Join(c.binDir, "pg_ctl"), "-D", c.dataDir, "stop"})
	return "`make db-stop` (or `" + shellJoin(argv) + "`)"
}

// accessHint explains the usual reason initdb fails when run as another OS
// user.
func (c *cluster) accessHint() string {
	if c.runAs == "" {
		return ""
	}
	return fmt.Sprintf("\n(OS user %q must be able to reach %s: every directory above it needs o+x; or choose another -data-dir)", c.runAs, c.dataDir)
}

// announce says loudly that a throwaway cluster runs, where, and how to stop
// it.
func (c *cluster) announce(w io.Writer, where, user string, initialized bool, dbState string) {
	what := "started the throwaway PostgreSQL cluster"
	if initialized {
		what = "initialized and started a throwaway PostgreSQL cluster"
	}
	runAs := ""
	if c.runAs != "" {
		runAs = fmt.Sprintf(", running as OS user %q", c.runAs)
	}
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(w, "devpg: %s\n", rule)
	fmt.Fprintf(w, "devpg: No PostgreSQL answered at %s, so devpg %s.\n", where, what)
	fmt.Fprintf(w, "devpg:   server:   %s%s\n", c.version, runAs)
	fmt.Fprintf(w, "devpg:   access:   trust (no password), superuser %q; %s\n", user, dbState)
	fmt.Fprintf(w, "devpg:   data:     %s\n", c.dataDir)
	fmt.Fprintf(w, "devpg:   log:      %s\n", c.logFile)
	fmt.Fprintf(w, "devpg:   stop:     %s\n", c.stopCommand())
	fmt.Fprintf(w, "devpg: It keeps running after this command. To throw it away, stop it and delete %s.\n", c.dataDir)
	fmt.Fprintf(w, "devpg: %s\n", rule)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shellJoin(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// logTail returns the last n lines of the file at path, formatted to follow
// an error message, or "" if it cannot be read.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("\nlast lines of %s:\n%s", path, indent(strings.Join(lines, "\n")))
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
