package svc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
)

// Program is a service binary in the WTF Dial / upspin shape: parse the configuration, run until
// the context ends, close.
type Program interface {
	ParseFlags(args []string) error
	Run(ctx context.Context) error
	Close() error
}

// Execute runs a program as a process: it parses args, runs until SIGINT or SIGTERM, closes, and
// returns the exit code (0 done, -help or --version, 1 failed, 2 bad configuration). Every
// binary's main is `os.Exit(svc.Execute(name, NewMain(), os.Args[1:], os.Stderr))`. -version or
// --version anywhere before "--" prints the build (buildinfo) on stdout instead of running.
//
// `<binary> healthcheck URL` instead probes a running service (Probe) and exits 0 when it
// answers 2xx, 1 otherwise: the images are distroless, with no curl or wget for a container
// healthcheck to call, so every binary is its own probe.
func Execute(name string, p Program, args []string, stderr io.Writer) int {
	if askedVersion(args) {
		fmt.Fprintln(os.Stdout, buildinfo.Read().String(name))
		return 0
	}
	if len(args) == 2 && args[0] == HealthcheckCommand {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		if err := Probe(ctx, args[1]); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		return 0
	}
	if err := p.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := p.Run(ctx)
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// HealthcheckCommand is the first argument of a binary's probe mode (Execute).
const HealthcheckCommand = "healthcheck"

// probeTimeout bounds a probe: less than any sensible healthcheck timeout.
const probeTimeout = 3 * time.Second

// Probe GETs url (a service's /readyz or /healthz) and returns nil on a 2xx answer, else an
// error with the status and the first line of the body (the reason /readyz gives).
func Probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 512))
	if cerr := resp.Body.Close(); rerr == nil {
		rerr = cerr
	}
	if resp.StatusCode/100 != 2 {
		line, _, _ := strings.Cut(string(body), "\n")
		return fmt.Errorf("probe %s: %s: %s", url, resp.Status, line)
	}
	if rerr != nil {
		return fmt.Errorf("probe %s: %w", url, rerr)
	}
	return nil
}

func askedVersion(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if buildinfo.IsVersionFlag(a) {
			return true
		}
	}
	return false
}
