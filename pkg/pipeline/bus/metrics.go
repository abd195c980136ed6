package bus

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the per-stage counters of Consume, labelled by stage. One Metrics serves every
// Consume of a process; a nil *Metrics records nothing.
type Metrics struct {
	messages   *prometheus.CounterVec
	inflight   *prometheus.GaugeVec
	latency    *prometheus.HistogramVec
	pending    *prometheus.GaugeVec
	ackPending *prometheus.GaugeVec
	stuck      *prometheus.GaugeVec
}

// NewMetrics registers the stage metrics with reg:
//
//	amr_stage_messages_total{stage,outcome}  settled messages; outcome is ack, retryable,
//	                                         throttled, later, dead_letter, requeued or settle_error
//	amr_stage_in_flight{stage}               handlers running
//	amr_stage_handler_seconds{stage}         handler latency
//	amr_stage_consumer_pending{stage}        messages not yet delivered (consumer lag)
//	amr_stage_consumer_ack_pending{stage}    messages delivered and not yet settled
//	amr_stage_handlers_stuck{stage}          handlers still running past their deadline
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	stage := []string{"stage"}
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_stage_messages_total", Help: "Messages settled by a stage, by outcome.",
		}, []string{"stage", "outcome"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amr_stage_in_flight", Help: "Handlers of a stage running now.",
		}, stage),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "amr_stage_handler_seconds", Help: "Time a stage's handler took per message.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms .. ~4.4 min
		}, stage),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amr_stage_consumer_pending", Help: "Messages waiting for a stage's consumer (sampled).",
		}, stage),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amr_stage_consumer_ack_pending", Help: "Messages delivered to a stage and not yet settled (sampled).",
		}, stage),
		stuck: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "amr_stage_handlers_stuck", Help: "Handlers of a stage still running past their deadline (their messages were handed back).",
		}, stage),
	}
	for _, c := range []prometheus.Collector{m.messages, m.inflight, m.latency, m.pending, m.ackPending, m.stuck} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register stage metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) count(stage, outcome string) {
	if m != nil {
		m.messages.WithLabelValues(stage, outcome).Inc()
	}
}

func (m *Metrics) stuckHandlers(stage string, delta int64) {
	if m != nil {
		m.stuck.WithLabelValues(stage).Add(float64(delta))
	}
}

func (m *Metrics) inFlight(stage string, delta float64) {
	if m != nil {
		m.inflight.WithLabelValues(stage).Add(delta)
	}
}

func (m *Metrics) observe(stage string, d time.Duration) {
	if m != nil {
		m.latency.WithLabelValues(stage).Observe(d.Seconds())
	}
}

func (m *Metrics) lag(stage string, pending uint64, ackPending int) {
	if m != nil {
		m.pending.WithLabelValues(stage).Set(float64(pending))
		m.ackPending.WithLabelValues(stage).Set(float64(ackPending))
	}
}
