package testenv

// This file starts and stops the Azurite Azure Storage emulator (blob and queue) as a child
// process on free loopback ports.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// AzuriteAccount and AzuriteKey are Azurite's well-known development account; they are public by design.
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteOptions configures StartAzurite.
type AzuriteOptions struct {
	// Bin is the azurite executable. Empty: node_modules/.bin/azurite under the repository root
	// found by walking up from the working directory to go.work, then $PATH.
	Bin string
	// Dir is the workspace directory. Empty: a new temporary directory removed by Close.
	Dir string
	// BlobPort and QueuePort are the ports to listen on; 0 picks free ones.
	BlobPort, QueuePort int
	// StartTimeout bounds the wait for both ports to accept connections (default 30s).
	StartTimeout time.Duration
	// InMemory keeps blobs and queues in memory only (--inMemoryPersistence): Azurite otherwise
	// writes its whole metadata database to disk over and over, which grows with every blob
	// stored and, with tens of thousands of blobs, took more CPU than the pipeline it served.
	// Nothing survives a restart of Azurite then.
	InMemory bool
	// SQL keeps Azurite's blob metadata in a MariaDB server started for it (StartMariaDB;
	// Azurite's AZURITE_DB, "preview" in its README): LokiJS scans every stored blob on each
	// request and rebuilds its indexes on each delete, so tens of thousands of blobs slow it to a
	// crawl, where SQL's indexes do not. Blob contents stay in files. Incompatible with InMemory.
	SQL bool
}

// Azurite is a running Azurite.
type Azurite struct {
	BlobURL  string // http://127.0.0.1:PORT/devstoreaccount1/
	QueueURL string
	cmd      *exec.Cmd
	dir      string
	ownDir   bool
	stderr   *bytes.Buffer
	db       *MariaDB // with AzuriteOptions.SQL
	done     chan struct{}
	waitErr  error
	once     sync.Once
}

// ErrAzuriteNotInstalled is returned when no azurite executable can be found.
var ErrAzuriteNotInstalled = errors.New("azurite not installed: run `make setup` (npm ci) at the repository root")

// StartAzurite launches Azurite and waits until its blob and queue ports accept connections.
func StartAzurite(ctx context.Context, opts AzuriteOptions) (*Azurite, error) {
	bin, err := findBin(opts.Bin)
	if err != nil {
		return nil, err
	}
	s := &Azurite{dir: opts.Dir, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "azurite-"); err != nil {
			return nil, fmt.Errorf("azurite workspace: %w", err)
		}
		s.ownDir = true
	}
	ports := []int{opts.BlobPort, opts.QueuePort, 0}
	for i, p := range ports {
		if p == 0 {
			if ports[i], err = FreePort(); err != nil {
				s.cleanupDir()
				return nil, err
			}
		}
	}
	args := []string{"--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(ports[0]),
		"--queueHost", "127.0.0.1", "--queuePort", strconv.Itoa(ports[1]),
		"--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(ports[2])}
	if opts.InMemory && opts.SQL {
		s.cleanupDir()
		return nil, errors.New("azurite: InMemory and SQL exclude each other")
	}
	if opts.InMemory {
		args = append(args, "--inMemoryPersistence") // Azurite refuses it beside --location
	} else {
		args = append(args, "--location", s.dir)
	}
	env := os.Environ()
	if opts.SQL {
		if s.db, err = StartMariaDB(ctx); err != nil {
			s.cleanupDir()
			return nil, err
		}
		env = append(env, "AZURITE_DB="+s.db.AzuriteURL())
	}
	if f := os.Getenv("AMRPIPE_AZURITE_DEBUG"); f != "" {
		// Azurite's own log of every request, to see what a benchmark asks of it. It holds
		// SAS URLs whole: signed with Azurite's public development key, never a real account's.
		args = append(args, "--debug", f)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = env
	s.cmd.Stderr = s.stderr
	s.cmd.Stdout = s.stderr
	// Own process group, so Close stops node and anything it spawned; and killed with the test
	// process, so an interrupted run leaves no server behind.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("start azurite %s: %w", bin, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()

	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, p := range ports[:2] {
		if err := s.waitPort(wctx, p); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	s.BlobURL = fmt.Sprintf("http://127.0.0.1:%d/%s/", ports[0], AzuriteAccount)
	s.QueueURL = fmt.Sprintf("http://127.0.0.1:%d/%s/", ports[1], AzuriteAccount)
	return s, nil
}

func (s *Azurite) waitPort(ctx context.Context, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		select {
		case <-s.done:
			return fmt.Errorf("azurite exited before listening on %s: %v: %s", addr, s.waitErr, s.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("azurite did not listen on %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close stops Azurite and removes its temporary workspace.
func (s *Azurite) Close() error {
	var err error
	s.once.Do(func() {
		stopGroup(s.cmd, s.done, syscall.SIGTERM, 5*time.Second)
		err = s.cleanupDir()
		if s.db != nil {
			err = errors.Join(err, s.db.Close())
		}
	})
	return err
}

// stopGroup stops a server started in its own process group: sig, then SIGKILL after grace; done
// closes when the process has been waited for. A server that never started is left alone.
func stopGroup(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (s *Azurite) cleanupDir() error {
	if !s.ownDir {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove azurite workspace: %w", err)
	}
	return nil
}

func findBin(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	// The repository above the working directory, then the one above the binary (bin/amrctl
	// started from elsewhere).
	roots := []func() (string, error){RepoRoot, func() (string, error) {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		return repoRootFrom(filepath.Dir(exe))
	}}
	for _, root := range roots {
		if dir, err := root(); err == nil {
			p := filepath.Join(dir, "node_modules", ".bin", "azurite")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath("azurite"); err == nil {
		return p, nil
	}
	return "", ErrAzuriteNotInstalled
}

// RepoRoot walks up from the working directory to the directory holding go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return repoRootFrom(dir)
}

// repoRootFrom walks up from dir to the directory holding go.work.
func repoRootFrom(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above " + dir)
		}
		dir = parent
	}
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
