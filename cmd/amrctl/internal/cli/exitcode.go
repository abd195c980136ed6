package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/amrpipe/amrpipe/pkg/client"
)

// Exit codes of amrctl (README, "Exit codes"). Scripts rely on them: keep them stable.
const (
	ExitOK          = 0
	ExitFailed      = 1   // the command ran and what it did or looked at failed: a job, a plan, a check, a connection
	ExitUsage       = 2   // bad flags or arguments: nothing was done
	ExitNotFound    = 3   // no such plan, job, dead letter or context
	ExitDifferences = 4   // validate or diff ran to the end and found differences
	ExitInterrupted = 130 // Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
)

// ErrUsage marks an error in the way amrctl was called; ExitCode maps it to ExitUsage.
var ErrUsage = errors.New("usage")

// ErrNotFound marks a plan, job, dead letter or context that does not exist; ExitCode maps it to
// ExitNotFound. It is the client library's error, so errors from the job store match too.
var ErrNotFound = client.ErrNotFound

// usageError is a usage mistake; its message does not repeat "usage".
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// usageErrorf returns an error ExitCode maps to ExitUsage.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// interruptedError is a command stopped by Ctrl-C or SIGTERM: it matches context.Canceled, so
// ExitCode maps it to ExitInterrupted, and says more than "context canceled".
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string        { return e.msg }
func (e *interruptedError) Is(target error) bool { return target == context.Canceled }

// interruptedf returns an error ExitCode maps to ExitInterrupted.
func interruptedf(format string, args ...any) error {
	return &interruptedError{msg: fmt.Sprintf(format, args...)}
}

// ExitCode is amrctl's exit status for the error a command returned.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrDifferences):
		return ExitDifferences
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	}
	return ExitFailed
}
