package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/amrpipe/amrpipe/pkg/pipeline/promreg"
)

func TestShare(t *testing.T) {
	reg := prometheus.NewRegistry()
	newCounter := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "amr_test_total", Help: "h"})
	}
	a, b := newCounter(), newCounter()
	if err := promreg.Share(reg, &a); err != nil {
		t.Fatal(err)
	}
	if err := promreg.Share(reg, &b); err != nil {
		t.Fatal(err)
	}
	a.Inc()
	b.Inc()
	if got := testutil.ToFloat64(a); got != 2 {
		t.Errorf("shared counter = %v, want 2 (both count into one series)", got)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "amr_test_total", Help: "h"})
	if err := promreg.Share(reg, &g); err == nil {
		t.Error("a gauge under a counter's name was accepted")
	}
}
