package relay

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/promreg"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// metrics are the relay's own counters, besides the bus stage metrics.
type metrics struct {
	events     *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	malformed  *prometheus.CounterVec
	polls      *prometheus.CounterVec
	queue      *prometheus.CounterVec
	// unauthenticated counts plain queue messages for encrypted jobs (forged, or not SharePoint's).
	unauthenticated prometheus.Counter
	// unknown counts progress-log events with a name outside SharePoint's set.
	unknown prometheus.Counter
	// waits are the scheduled waits before a job's next poll, by why.
	waits *prometheus.HistogramVec
	// followed is the number of jobs followed (with a poll scheduled) at the last count.
	followed prometheus.Gauge
}

// newMetrics registers:
//
//	amr_relay_events_total{source,event}       events published first by this source
//	amr_relay_duplicates_total{source}         events suppressed because they were published already
//	amr_relay_malformed_events_total{source}   events that did not decode (skipped or dead-lettered)
//	amr_relay_polls_total{outcome}             polls: events, empty, ended, throttled, failed, error, bad_message
//	amr_relay_queue_messages_total{outcome}    report-queue messages: relayed, duplicate, deferred,
//	                                           finished, unknown_job, dead_letter, error, read_error
//	amr_relay_unauthenticated_messages_total   plain queue messages for encrypted jobs (dead-lettered)
//	amr_relay_unknown_events_total             progress-log events outside SharePoint's set (dead-lettered)
//	amr_relay_poll_wait_seconds{why}           waits scheduled before a job's next poll
//	amr_relay_followed_jobs                    jobs followed, all replicas (from the schedules)
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		events:     counter("amr_relay_events_total", "Distinct migration events published, by the source that saw them first.", "source", "event"),
		duplicates: counter("amr_relay_duplicates_total", "Events not published again because they already were.", "source"),
		malformed:  counter("amr_relay_malformed_events_total", "Events that did not decode.", "source"),
		polls:      counter("amr_relay_polls_total", "GetMigrationJobProgress polls of a job, by outcome.", "outcome"),
		queue:      counter("amr_relay_queue_messages_total", "Report-queue messages handled, by outcome.", "outcome"),
	}
	m.unauthenticated = prometheus.NewCounter(prometheus.CounterOpts{Name: "amr_relay_unauthenticated_messages_total",
		Help: "Plain report-queue messages for encrypted jobs: not SharePoint's, dead-lettered."})
	m.unknown = prometheus.NewCounter(prometheus.CounterOpts{Name: "amr_relay_unknown_events_total",
		Help: "Progress-log events with a name outside SharePoint's documented set, dead-lettered."})
	m.waits = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "amr_relay_poll_wait_seconds",
		Help:    "Waits scheduled before a job's next poll, by why (interval, confirm, throttled, more_pages, queue_event...).",
		Buckets: prometheus.ExponentialBuckets(1, 2.5, 10)}, []string{"why"}) // 1 s .. ~1 h
	m.followed = prometheus.NewGauge(prometheus.GaugeOpts{Name: "amr_relay_followed_jobs",
		Help: "Jobs followed by the relays (one poll schedule each), at the last count."})
	if err := errors.Join(promreg.Share(reg, &m.waits), promreg.Share(reg, &m.followed), promreg.Share(reg, &m.events), promreg.Share(reg, &m.duplicates), promreg.Share(reg, &m.malformed),
		promreg.Share(reg, &m.polls), promreg.Share(reg, &m.queue), promreg.Share(reg, &m.unauthenticated),
		promreg.Share(reg, &m.unknown)); err != nil {
		return nil, err
	}
	return m, nil
}

// sourceLabel is the "source" label: progress_api or queue.
func sourceLabel(s amrpipev1.Source) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SOURCE_"))
}
