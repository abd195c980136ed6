// Command amrctl runs amrpipe on the embedded default (`amrctl dev`) and talks to a deployed system:
// submit plans, watch jobs, tail records.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Root().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "amrctl:", err)
		os.Exit(cli.ExitCode(err))
	}
}
