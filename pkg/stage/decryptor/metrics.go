package decryptor

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
//	amr_decryptor_manifests_total{mode}   package files stored; mode is decrypted or copied (unencrypted job)
//	amr_decryptor_duplicates_total        ManifestReady republished for a file already announced (redelivery)
//	amr_decryptor_bytes_total{kind}       bytes read (ciphertext) and stored (plaintext)
//	amr_decryptor_errors_total{class}     failures by class: bad_event, bad_name, job_record, key, no_iv,
//	                                      not_found, wrong_key, truncated, bad_padding, storage, publish, other
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
	var err error
	if m.manifests, err = register(reg, m.manifests); err != nil {
		return nil, err
	}
	if m.duplicates, err = register(reg, m.duplicates); err != nil {
		return nil, err
	}
	if m.bytes, err = register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under its name (two stages of
// one kind in one process, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}
