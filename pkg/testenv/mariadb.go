package testenv

// This file starts and stops a MariaDB server from the Debian package as a child process, for
// Azurite's SQL metadata store (AzuriteOptions.SQL): a temporary data directory, a free loopback
// port, the socket beside the data. Nothing of ours talks to it but Azurite.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrMariaDBNotInstalled is returned when the MariaDB server is not installed.
var ErrMariaDBNotInstalled = errors.New("mariadb not installed (no mariadbd): `make bench-scale` installs the mariadb-server package")

// MariaDB is a running MariaDB server owned by the test process.
type MariaDB struct {
	Port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// mariaDBUser and mariaDBPassword are the account Azurite uses on the loopback test server.
const (
	mariaDBUser     = "azurite"
	mariaDBPassword = "azurite"
	mariaDBDatabase = "azurite_blob"
)

// StartMariaDB creates a data directory in a new temporary directory and starts a server on a
// free loopback port, with a database and an account for Azurite. Durability is traded for speed
// (no binary log, no doublewrite, the log flushed once a second): it holds a benchmark's emulator
// metadata. The server dies with the test process (Pdeathsig); Close stops it and removes the
// directory.
func StartMariaDB(ctx context.Context) (*MariaDB, error) {
	server, err := exec.LookPath("mariadbd")
	if err != nil {
		if server, err = exec.LookPath("/usr/sbin/mariadbd"); err != nil { // sbin is not on every PATH
			return nil, ErrMariaDBNotInstalled
		}
	}
	dir, err := os.MkdirTemp("", "amrpipe-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("mariadb dir: %w", err)
	}
	m := &MariaDB{dir: dir, done: make(chan struct{})}
	fail := func(err error) (*MariaDB, error) {
		m.Close()
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "mysqld.sock")
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	install.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := install.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mariadb-install-db: %w: %s", err, out))
	}
	if m.Port, err = FreePort(); err != nil {
		return fail(err)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(fmt.Errorf("mariadb log: %w", err))
	}
	defer logf.Close()
	m.cmd = exec.Command(server, "--no-defaults", "--datadir="+data, "--socket="+sock, "--port="+strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve", "--skip-log-bin", "--innodb-doublewrite=0",
		"--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=256M", "--max-connections=200")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start mariadb: %w", err))
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	setup := fmt.Sprintf("CREATE DATABASE %s; CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'; GRANT ALL ON %s.* TO '%s'@'127.0.0.1';",
		mariaDBDatabase, mariaDBUser, mariaDBPassword, mariaDBDatabase, mariaDBUser)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		// The client over the socket as root: the server's own tool, no Go driver for a server
		// only Azurite uses.
		out, err := exec.CommandContext(wctx, "mariadb", "--no-defaults", "--socket="+sock, "-uroot", "-e", setup).CombinedOutput()
		if err == nil {
			return m, nil
		}
		select {
		case <-m.done:
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return fail(fmt.Errorf("mariadb exited before accepting connections: %s", log))
		case <-wctx.Done():
			return fail(fmt.Errorf("mariadb did not accept connections: %w (last: %v: %s)", wctx.Err(), err, out))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// AzuriteURL is the AZURITE_DB value that points Azurite's blob metadata at this server.
func (m *MariaDB) AzuriteURL() string {
	return fmt.Sprintf("mysql://%s:%s@127.0.0.1:%d/%s", mariaDBUser, mariaDBPassword, m.Port, mariaDBDatabase)
}

// Close stops the server (SIGTERM, then a kill) and removes its directory.
func (m *MariaDB) Close() error {
	var err error
	m.once.Do(func() {
		stopGroup(m.cmd, m.done, syscall.SIGTERM, 20*time.Second)
		if rerr := os.RemoveAll(m.dir); rerr != nil {
			err = fmt.Errorf("remove mariadb dir: %w", rerr)
		}
	})
	return err
}
