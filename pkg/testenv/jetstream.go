package testenv

// This file starts an embedded JetStream server with the pipeline's topology.

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// JetStream is a running embedded server with the topology ensured and one client connection.
type JetStream struct {
	Server *NATSServer
	Conn   *nats.Conn
	JS     jetstream.JetStream
}

// StartJetStream starts the server, ensures the topology (one replica) and connects; everything is closed
// when the test ends.
func StartJetStream(t testing.TB) *JetStream {
	t.Helper()
	srv, err := StartNATS(NATSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	e := &JetStream{Server: srv}
	e.Conn, e.JS = e.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topology.Ensure(ctx, e.JS, topology.Options{}); err != nil {
		t.Fatal(err)
	}
	return e
}

// Connect opens another connection to the server (another "replica"), closed when the test ends.
func (e *JetStream) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
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
func (e *JetStream) KV(t testing.TB, bucket string) jetstream.KeyValue {
	t.Helper()
	kv, err := e.JS.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}
