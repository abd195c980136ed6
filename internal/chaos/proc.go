package chaos

// This file runs the suite's programs as OS processes that can be killed and started again with
// the same command line and environment.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/backoff"
)

// Proc is one program of the suite (a stage, nats-server, the simulator) run as an OS process.
// Kill and Start may be called any number of times; every start has the same command line and
// environment, as a supervisor restarting a crashed container would. Its output goes, start after
// start, to one log file.
type Proc struct {
	// Name names the program in the report and the log.
	Name string
	// Bin, Args and Env are its command line and its whole environment.
	Bin  string
	Args []string
	Env  []string
	// LogPath is the file its standard output and error are appended to.
	LogPath string
	// Ready returns nil once a started process can take work.
	Ready func(ctx context.Context) error

	life       sync.Mutex // one lifecycle operation at a time (Restart, Revive)
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	expectExit bool
	starts     int
	unexpected []string // exits the harness did not cause
}

// Start starts the process and waits until Ready holds (or ctx ends, or it exits).
func (p *Proc) Start(ctx context.Context) error {
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.Name, err)
	}
	p.mu.Lock()
	if p.cmd != nil {
		p.mu.Unlock()
		_ = log.Close()
		return fmt.Errorf("%s is running", p.Name)
	}
	p.starts++
	fmt.Fprintf(log, "=== chaos: start %d of %s at %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, and killed with the harness if the harness dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		_ = log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expectExit = cmd, done, false
	p.mu.Unlock()
	go func() {
		werr := cmd.Wait()
		_ = log.Close()
		p.mu.Lock()
		if !p.expectExit {
			p.unexpected = append(p.unexpected, fmt.Sprintf("%s exited by itself at %s: %v", p.Name, time.Now().Format(time.TimeOnly), werr))
		}
		p.cmd = nil
		p.mu.Unlock()
		close(done)
	}()
	return p.waitReady(ctx, done)
}

func (p *Proc) waitReady(ctx context.Context, done <-chan struct{}) error {
	var last error
	for {
		if last = p.Ready(ctx); last == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (last: %v); log %s", p.Name, last, p.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last: %v): %w", p.Name, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Restart kills the process with SIGKILL, leaves it down for down and starts it again, waiting at
// most ready for it to be ready.
func (p *Proc) Restart(ctx context.Context, down, ready time.Duration) error {
	p.life.Lock()
	defer p.life.Unlock()
	if err := p.Kill(); err != nil {
		return err
	}
	if err := backoff.Sleep(ctx, down); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ready)
	defer cancel()
	return p.Start(ctx)
}

// Revive starts the process again if it exited by itself (a supervisor's restart; Unexpected
// keeps the exit) and reports whether it did.
func (p *Proc) Revive(ctx context.Context) (bool, error) {
	p.life.Lock()
	defer p.life.Unlock()
	p.mu.Lock()
	crashed := p.cmd == nil && !p.expectExit
	p.mu.Unlock()
	if !crashed {
		return false, nil
	}
	return true, p.Start(ctx)
}

// WaitReady waits until the running process is ready (a process that is not running never is).
func (p *Proc) WaitReady(ctx context.Context) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return fmt.Errorf("%s was never started", p.Name)
	}
	return p.waitReady(ctx, done)
}

// Kill sends SIGKILL (no drain, no deferred cleanup: a crash) and waits for the process to be gone.
func (p *Proc) Kill() error { return p.stop(syscall.SIGKILL, 0) }

// Stop asks the process to drain (SIGTERM) and kills it after grace.
func (p *Proc) Stop(grace time.Duration) error { return p.stop(syscall.SIGTERM, grace) }

func (p *Proc) stop(sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return nil
	}
	p.expectExit = true
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	if grace > 0 {
		select {
		case <-done:
			return nil
		case <-time.After(grace):
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	<-done
	return nil
}

// Unexpected lists the exits the harness did not cause: a service that gave up (on NATS, on its
// consumer) instead of carrying on.
func (p *Proc) Unexpected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// Tail returns the last n lines of the log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LogContains reports whether the log holds s (e.g. the race detector's warning).
func (p *Proc) LogContains(s string) bool {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return err == nil && bytes.Contains(b, []byte(s))
}

// environ is the harness's environment without the programs' own configuration (AMR_*, SPSIM_*),
// plus extra: a process gets exactly what the suite gives it.
func environ(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AMR_") && !strings.HasPrefix(kv, "SPSIM_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}
