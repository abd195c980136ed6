package testenv

// This file starts and stops a PostgreSQL server from the Debian package as a child process: a
// temporary data directory, a free loopback port, the socket beside the data.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// ErrPostgresNotInstalled is returned when no initdb can be found.
var ErrPostgresNotInstalled = errors.New("postgresql not installed (no /usr/lib/postgresql/*/bin/initdb): run `make setup` at the repository root")

// Postgres is a running PostgreSQL server owned by the test process.
type Postgres struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
	dbs  atomic.Int64
}

// pgBinDir is the bin directory of the newest installed PostgreSQL.
func pgBinDir() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return "", ErrPostgresNotInstalled
	}
	sort.Slice(m, func(i, j int) bool { // newest major version first
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi > vj
	})
	return filepath.Dir(m[0]), nil
}

// pgCredential is who runs the server: initdb refuses root, so a root test process runs it as
// the postgres user; anyone else runs it as themselves.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user (make setup installs it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// StartPostgres creates a cluster in a new temporary directory (initdb, trust authentication,
// superuser postgres) and starts its server on a free loopback port. The server dies with the
// test process (Pdeathsig); Close stops it and removes the directory.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return nil, err
	}
	removeStalePostgres()
	dir, err := os.MkdirTemp("", "amrpipe-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	p := &Postgres{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*Postgres, error) {
		p.Close()
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("postgres dir: %w", err))
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	if p.Port, err = FreePort(); err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(fmt.Errorf("postgres log: %w", err))
	}
	defer logf.Close()
	// The server runs in the foreground (not pg_ctl, whose daemon would outlive a killed test).
	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(p.Port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start postgres: %w", err))
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := p.ping(wctx)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return fail(fmt.Errorf("postgres exited before accepting connections: %s", log))
		case <-wctx.Done():
			return fail(fmt.Errorf("postgres did not accept connections: %w (last: %v)", wctx.Err(), err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// removeStalePostgres removes the directories of servers whose test process was killed (the
// server died with it, Pdeathsig, but nothing removed its directory): those without a live
// postmaster, older than a minute (a younger one may be another test binary's, starting).
func removeStalePostgres() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "amrpipe-pg-*"))
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		if pidFile, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(pidFile), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && syscall.Kill(pid, 0) == nil {
				continue // alive
			}
		}
		_ = os.RemoveAll(d)
	}
}

func (p *Postgres) ping(ctx context.Context) error {
	db, err := sql.Open("pgx", p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}

// DSN is the URL of database name on the server.
func (p *Postgres) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, name)
}

// NewDatabase creates an empty database for one test and returns its DSN.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", p.dbs.Add(1))
	db, err := sql.Open("pgx", p.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return p.DSN(name)
}

// Close stops the server (a fast shutdown, then a kill) and removes its directory.
func (p *Postgres) Close() error {
	var err error
	p.once.Do(func() {
		stopGroup(p.cmd, p.done, syscall.SIGINT, 10*time.Second) // SIGINT: PostgreSQL's fast shutdown
		if rerr := os.RemoveAll(p.dir); rerr != nil {
			err = fmt.Errorf("remove postgres dir: %w", rerr)
		}
	})
	return err
}

// RunWithPostgres is the body of a TestMain: it starts the PostgreSQL server all tests of the
// binary share into *pg (each test takes its own database with NewDatabase), runs them, stops
// the server and returns the exit code. A machine without PostgreSQL fails the tests, saying to
// run `make setup`: they are never skipped silently.
func RunWithPostgres(m *testing.M, pg **Postgres) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	srv, err := StartPostgres(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "postgres:", err)
		return 1
	}
	*pg = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "postgres close:", err)
		code = max(code, 1)
	}
	return code
}

// CPUTime is the CPU time the server has used so far: the postmaster, its live children
// (backends, background writers) and its exited ones, from /proc (clock ticks of 10 ms).
func (p *Postgres) CPUTime() (time.Duration, error) {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0, errors.New("postgres not running")
	}
	root := p.cmd.Process.Pid
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the command name (which may hold spaces) in parentheses: state ppid ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != root && ppid != root {
			continue
		}
		last := 13 // utime stime (fields 14, 15 of stat)
		if pid == root {
			last = 15 // and cutime cstime: the exited backends
		}
		for _, v := range f[11:last] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
