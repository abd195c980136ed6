package svc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// streamMetrics are the fill of the topology's streams, the alarms of bounded storage
// (docs/pipeline.md, "Size limits and back-pressure").
type streamMetrics struct {
	bytes, messages, maxBytes, consumers *prometheus.GaugeVec
	// names are the JetStream stream names of the topology (streams, KV_*, OBJ_*).
	names map[string]bool
}

// newStreamMetrics registers
//
//	amr_stream_bytes{stream}      bytes stored
//	amr_stream_messages{stream}   messages stored
//	amr_stream_max_bytes{stream}  the stream's size limit
//	amr_stream_consumers{stream}  consumers of the stream
func newStreamMetrics(reg prometheus.Registerer) (*streamMetrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"stream"})
	}
	m := &streamMetrics{
		bytes:     gauge("amr_stream_bytes", "Bytes stored in a stream of the topology (sampled)."),
		messages:  gauge("amr_stream_messages", "Messages stored in a stream of the topology (sampled)."),
		maxBytes:  gauge("amr_stream_max_bytes", "Size limit of a stream of the topology; a full stream refuses new messages."),
		consumers: gauge("amr_stream_consumers", "Consumers of a stream of the topology (sampled)."),
		names:     map[string]bool{},
	}
	for _, st := range topology.Stores(topology.Options{}) {
		m.names[st.Stream] = true
	}
	for _, c := range []prometheus.Collector{m.bytes, m.messages, m.maxBytes, m.consumers} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register stream metrics: %w", err)
		}
	}
	return m, nil
}

// run samples every interval until ctx ends.
func (m *streamMetrics) run(ctx context.Context, js jetstream.JetStream, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, min(interval, 30*time.Second))
		if err := m.sample(sctx, js); err != nil && ctx.Err() == nil {
			log.Debug("sample stream metrics", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads every stream's state with one paged STREAM.LIST request (all of the topology's
// streams fit in its first page), not one STREAM.INFO per stream.
func (m *streamMetrics) sample(ctx context.Context, js jetstream.JetStream) error {
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		name := info.Config.Name
		if !m.names[name] {
			continue
		}
		m.bytes.WithLabelValues(name).Set(float64(info.State.Bytes))
		m.messages.WithLabelValues(name).Set(float64(info.State.Msgs))
		m.maxBytes.WithLabelValues(name).Set(float64(info.Config.MaxBytes))
		m.consumers.WithLabelValues(name).Set(float64(info.State.Consumers))
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	return nil
}
