package jobstore

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/promreg"
)

// transitionMetrics count what Fire did; nil counts nothing.
type transitionMetrics struct {
	moved   *prometheus.CounterVec
	refused *prometheus.CounterVec
}

// Instrument registers the store's metrics in reg:
//
//	amr_job_transitions_total{transition,from,to}      transitions that changed a job record
//	amr_job_transitions_refused_total{transition,from} transitions the job's state did not allow
//
// Two stores instrumented on one registry share the counters.
func (s *Store) Instrument(reg prometheus.Registerer) error {
	m := &transitionMetrics{
		moved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amr_job_transitions_total",
			Help: "Job lifecycle transitions that changed a job record, by transition and states."}, []string{"transition", "from", "to"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amr_job_transitions_refused_total",
			Help: "Job lifecycle transitions refused by the job's state (a late or foreign event)."}, []string{"transition", "from"}),
	}
	if err := errors.Join(promreg.Share(reg, &m.moved), promreg.Share(reg, &m.refused)); err != nil {
		return fmt.Errorf("job store: %w", err)
	}
	s.metrics = m
	return nil
}

func (m *transitionMetrics) count(moves []move) {
	if m == nil {
		return
	}
	for _, mv := range moves {
		if mv.to < 0 {
			m.refused.WithLabelValues(string(mv.on), StateName(mv.from)).Inc()
			continue
		}
		m.moved.WithLabelValues(string(mv.on), StateName(mv.from), StateName(mv.to)).Inc()
	}
}
