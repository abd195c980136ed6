package testenv

// This file connects a harness (amrctl dev, the chaos suite) to the pipeline's JetStream.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// Connect opens a connection named name to the server at url, with opts, and its JetStream.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, append([]nats.Option{nats.Name(name)}, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// OpenPipeline connects (Connect), ensures the topology (one replica) and opens the job store: a
// harness's own view of the pipeline.
func OpenPipeline(ctx context.Context, url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, *jobstore.Store, error) {
	nc, js, err := Connect(url, name, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := topology.Ensure(ctx, js, topology.Options{}); err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	store, err := jobstore.Open(ctx, js, time.Now)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return nc, js, store, nil
}
