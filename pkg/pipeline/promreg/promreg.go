// Package promreg registers a stage's Prometheus collectors so that several stages of one kind
// in one process (the in-process stack, tests) count into the same series instead of failing.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Share registers *c on reg. When a collector of the same name and type is registered already,
// *c becomes that one, so both count into it; one of another type is an error.
func Share[C prometheus.Collector](reg prometheus.Registerer, c *C) error {
	err := reg.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		if err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
		return nil
	}
	existing, ok := are.ExistingCollector.(C)
	if !ok {
		return fmt.Errorf("register metrics: %w (of another type)", err)
	}
	*c = existing
	return nil
}
