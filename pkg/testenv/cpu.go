package testenv

import (
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is the user and system time this process has used so far: every goroutine's, an
// embedded server's included. Benchmarks report records per CPU-second with it, a figure that
// other work on a shared machine moves much less than wall time.
func ProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
