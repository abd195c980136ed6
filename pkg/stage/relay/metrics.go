package relay

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// metrics are the relay's own counters, besides the bus stage metrics.
type metrics struct {
	events     *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	malformed  *prometheus.CounterVec
	polls      *prometheus.CounterVec
	jobStates  *prometheus.CounterVec
	queue      *prometheus.CounterVec
}

// newMetrics registers:
//
//	amr_relay_events_total{source,event}       events published first by this source
//	amr_relay_duplicates_total{source}         events suppressed because they were published already
//	amr_relay_malformed_events_total{source}   events that did not decode (skipped or dead-lettered)
//	amr_relay_polls_total{outcome}             polls: events, empty, ended, throttled, failed, error, bad_message
//	amr_relay_job_states_total{state}          jobs this replica moved into a state (queued, running, ended, failed…)
//	amr_relay_queue_messages_total{outcome}    report-queue messages: relayed, duplicate, unknown_job,
//	                                           dead_letter, error, read_error
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		events:     counter("amr_relay_events_total", "Distinct migration events published, by the source that saw them first.", "source", "event"),
		duplicates: counter("amr_relay_duplicates_total", "Events not published again because they already were.", "source"),
		malformed:  counter("amr_relay_malformed_events_total", "Events that did not decode.", "source"),
		polls:      counter("amr_relay_polls_total", "GetMigrationJobProgress polls of a job, by outcome.", "outcome"),
		jobStates:  counter("amr_relay_job_states_total", "Jobs moved into a state by this replica.", "state"),
		queue:      counter("amr_relay_queue_messages_total", "Report-queue messages handled, by outcome.", "outcome"),
	}
	for _, c := range []**prometheus.CounterVec{&m.events, &m.duplicates, &m.malformed, &m.polls, &m.jobStates, &m.queue} {
		err := reg.Register(*c)
		var are prometheus.AlreadyRegisteredError
		switch {
		case errors.As(err, &are):
			// Two relays in one process (tests): share the counters.
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("register metrics: %w", err)
			}
			*c = existing
		case err != nil:
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// sourceLabel is the "source" label: progress_api or queue.
func sourceLabel(s amrpipev1.Source) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SOURCE_"))
}

// stateLabel is the "state" label: submitted, queued, running, ended, done or failed.
func stateLabel(s amrpipev1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}
