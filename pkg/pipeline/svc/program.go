package svc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Program is a service binary in the WTF Dial / upspin shape: parse the configuration, run until
// the context ends, close.
type Program interface {
	ParseFlags(args []string) error
	Run(ctx context.Context) error
	Close() error
}

// Execute runs a program as a process: it parses args, runs until SIGINT or SIGTERM, closes, and
// returns the exit code (0 done or -help, 1 failed, 2 bad configuration). Every binary's main is
// `os.Exit(svc.Execute(name, NewMain(), os.Args[1:], os.Stderr))`.
func Execute(name string, p Program, args []string, stderr io.Writer) int {
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
