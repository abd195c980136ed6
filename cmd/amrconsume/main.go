// Command amrconsume prints amrpipe's metadata records as JSON lines (docs/records.md), through a
// declared downstream consumer that resumes where the last run stopped: the smallest migration
// engine, to copy. Declare its consumer first: amrctl topology apply --downstream NAME.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/buildinfo"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

func main() {
	fs := flag.NewFlagSet("amrconsume", flag.ExitOnError)
	url := fs.String("nats-url", nats.DefaultURL, "NATS server(s), comma-separated")
	name := fs.String("consumer", topology.DefaultDownstream, "the declared downstream consumer to read with")
	follow := fs.Bool("follow", true, "wait for new records; false stops at the end of the stream")
	batches := fs.Int("batch-size", 8, "record batches fetched at once")
	version := fs.Bool("version", false, "print the build and exit")
	flagenv.Usage(fs, "AMR")
	if err := flagenv.Parse(fs, "AMR", os.Args[1:], os.LookupEnv); err != nil {
		fail(err)
	}
	if *version {
		fmt.Println(buildinfo.Read().String("amrconsume"))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := client.Connect(ctx, *url)
	if err != nil {
		fail(err)
	}
	cons, err := c.Consumer(ctx, *name, client.WithFollow(*follow), client.WithBatchSize(*batches))
	if err == nil {
		err = cons.RunBatches(ctx, client.JSONLines(os.Stdout))
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "amrconsume:", err)
	os.Exit(1)
}
