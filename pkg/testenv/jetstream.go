package testenv

// This file starts an embedded JetStream server with the pipeline's topology.

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// JetStream is a running embedded server with the topology ensured and one client connection.
type JetStream struct {
	Server *NATSServer
	Conn   *nats.Conn
	JS     jetstream.JetStream
}

// StartJetStream starts the server, applies the topology (one replica) and connects; everything is closed
// when the test ends.
func StartJetStream(t testing.TB) *JetStream {
	t.Helper()
	return StartJetStreamWith(t, topology.Options{})
}

// StartJetStreamWith is StartJetStream applying the topology with o (size limits, downstream
// consumers).
func StartJetStreamWith(t testing.TB, o topology.Options) *JetStream {
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
	if err := topology.Ensure(ctx, e.JS, o); err != nil {
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

// Runtime starts a service runtime on the server (its own connection, like a replica), with
// the topology verified as a service does, logging at debug level to log (nil: nowhere); it is
// closed when the test ends.
func (e *JetStream) Runtime(t testing.TB, name string, log io.Writer) *svc.Runtime {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := svc.New(ctx, svc.Config{Name: name, NATSURL: e.Server.ClientURL(), HTTPAddr: "127.0.0.1:0",
		OTel: "none", LogLevel: "debug", DrainTimeout: 5 * time.Second}, svc.Options{LogOutput: log, Signals: []os.Signal{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := rt.EnsureTopology(ctx); err != nil {
		t.Fatal(err)
	}
	return rt
}

// Deps opens the deps of a stage on a runtime of its own (a replica), from the shared
// configuration cfg and kek (nil for none), logging to log (nil: nowhere). World.Deps fills cfg
// in for its simulator and Azurite.
func (e *JetStream) Deps(t testing.TB, d stage.Def, cfg stage.Config, kek *keywrap.KEK, log io.Writer) stage.Deps {
	t.Helper()
	if cfg.MaxThrottleWait <= 0 {
		cfg.MaxThrottleWait = stage.DefaultMaxThrottleWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deps, err := stage.Open(ctx, d, cfg, e.Runtime(t, d.Name, log), kek)
	if err != nil {
		t.Fatal(err)
	}
	return deps
}
