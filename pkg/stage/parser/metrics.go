package parser

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/promreg"
)

// metrics are the parser's own series, besides the bus stage metrics.
type metrics struct {
	records   *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	batches   prometheus.Counter
	files     *prometheus.CounterVec
	bytes     prometheus.Counter
	fileTime  prometheus.Histogram
	summaries *prometheus.CounterVec
	probes    prometheus.Counter
	tokens    prometheus.Counter
	stalled   prometheus.Counter
	resumed   prometheus.Counter
	expired   prometheus.Counter
}

// newMetrics registers (an already registered series is shared: two parsers in one process):
//
//	amr_parser_records_total{type}          records published, by object type (SPFile, User, ...)
//	amr_parser_records_dropped_total{reason} records left to other jobs: policy, principals,
//	                                        outside_urls, outside_scope
//	amr_parser_batches_total                record batches published (a re-parse counts again)
//	amr_parser_files_total{kind,outcome}    package files: outcome parsed, failed (dead-lettered) or
//	                                        repeated (already folded in; a redelivery)
//	amr_parser_bytes_total                  package file bytes parsed; its rate is the parse bytes/s
//	amr_parser_file_seconds                 time to parse and publish one file
//	amr_parser_summaries_total{outcome}     job summaries published: done or failed
//	amr_parser_probe_results_total          probe results published for the planner
//	amr_parser_tokens_committed_total       change tokens stored for the next incremental pass
//	amr_parser_jobs_stalled_total           jobs the watchdog ended: files announced and never parsed
//	amr_parser_files_resumed_total          parses that resumed a file where an earlier one stopped
//	amr_parser_redecrypt_requests_total     decrypted files found gone, asked of the decryptor again
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "amr_parser_" + name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "amr_parser_" + name, Help: help}, labels)
	}
	m := &metrics{
		records:   counterVec("records_total", "Records published, by object type.", "type"),
		dropped:   counterVec("records_dropped_total", "Records not published by this job (another job publishes them), by reason.", "reason"),
		batches:   counter("batches_total", "Record batches published."),
		files:     counterVec("files_total", "Package files handled, by kind and outcome.", "kind", "outcome"),
		bytes:     counter("bytes_total", "Package file bytes parsed."),
		summaries: counterVec("summaries_total", "Job summaries published, by outcome.", "outcome"),
		probes:    counter("probe_results_total", "Probe results published for the planner."),
		tokens:    counter("tokens_committed_total", "Change tokens stored after a job summary."),
		fileTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "amr_parser_file_seconds", Help: "Time to parse and publish one package file.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8), // 10 ms .. ~2.7 min
		}),
		stalled: counter("jobs_stalled_total", "Jobs the watchdog ended: files announced and never parsed within -stall-timeout."),
		resumed: counter("files_resumed_total", "Parses of a package file that resumed where an earlier parse stopped."),
		expired: counter("redecrypt_requests_total", "Package files whose decrypted copy was gone, asked of the decryptor again."),
	}
	if err := errors.Join(promreg.Share(reg, &m.records), promreg.Share(reg, &m.dropped), promreg.Share(reg, &m.batches), promreg.Share(reg, &m.files),
		promreg.Share(reg, &m.bytes), promreg.Share(reg, &m.fileTime), promreg.Share(reg, &m.summaries), promreg.Share(reg, &m.probes),
		promreg.Share(reg, &m.tokens), promreg.Share(reg, &m.stalled), promreg.Share(reg, &m.resumed), promreg.Share(reg, &m.expired)); err != nil {
		return nil, err
	}
	return m, nil
}
