// Package topotest starts an embedded JetStream server with the pipeline's topology for tests of
// the packages that use it.
package topotest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv/natsembed"
)

// Env is a running embedded server with the topology ensured and one client connection.
type Env struct {
	Server *natsembed.Server
	Conn   *nats.Conn
	JS     jetstream.JetStream
}

// Start starts the server, ensures the topology (one replica) and connects; everything is closed
// when the test ends.
func Start(t testing.TB) *Env {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	e := &Env{Server: srv}
	e.Conn, e.JS = e.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topology.Ensure(ctx, e.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// Connect opens another connection to the server (another "replica"), closed when the test ends.
func (e *Env) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(e.Server.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// KV returns a bucket of the topology.
func (e *Env) KV(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := e.JS.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
