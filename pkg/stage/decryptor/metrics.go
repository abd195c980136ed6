package decryptor

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/promreg"
)

// metrics are the decryptor's own counters, besides the bus stage metrics.
type metrics struct {
	manifests  *prometheus.CounterVec
	duplicates prometheus.Counter
	bytes      *prometheus.CounterVec
	errors     *prometheus.CounterVec
}

// newMetrics registers:
//
//	amr_decryptor_manifests_total{mode}   package files stored; mode is decrypted, copied (unencrypted job),
//	                                      decrypted_again (its copy expired before it was parsed) or reused
//	amr_decryptor_duplicates_total        ManifestReady republished for a file already announced (redelivery)
//	amr_decryptor_bytes_total{kind}       bytes read (ciphertext) and stored (plaintext)
//	amr_decryptor_errors_total{class}     failures by class: bad_event, bad_name, job_record, key, no_iv,
//	                                      not_found, gone, wrong_key, truncated, bad_padding, storage, publish, other
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		manifests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_decryptor_manifests_total", Help: "Package files decrypted (or copied, unencrypted) into the object store.",
		}, []string{"mode"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "amr_decryptor_duplicates_total", Help: "ManifestReady publishes JetStream dropped as duplicates (redelivered events).",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_decryptor_bytes_total", Help: "Bytes downloaded (ciphertext) and stored (plaintext).",
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_decryptor_errors_total", Help: "Failed attempts by class.",
		}, []string{"class"}),
	}
	if err := errors.Join(promreg.Share(reg, &m.manifests), promreg.Share(reg, &m.duplicates), promreg.Share(reg, &m.bytes),
		promreg.Share(reg, &m.errors)); err != nil {
		return nil, err
	}
	return m, nil
}
