package stage

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

// SharePoint is how every stage calls SharePoint: the REST client, paced by the tenant host's
// throttling budget that all replicas of all stages share (KV amr_throttle: a 429/503
// Retry-After pauses every caller of the host, RateLimit-* headers slow calls down before
// throttling starts), with in-call retries of transient failures and every error judged by
// Verdict. Its metrics (amr_sharepoint_*) count answers and waits per host.
type SharePoint struct {
	// Client is the REST client; call it inside Call.
	Client *spo.Client
	budget *throttle.Paced
	policy throttle.Policy
	m      *spMetrics
}

// OpenSharePoint builds the caller on rt: the client from cfg (its secrets loaded), the budget
// bound to the shared bucket, and the metrics registered in rt's registry.
func OpenSharePoint(ctx context.Context, rt *svc.Runtime, cfg spo.Config, maxWait time.Duration) (*SharePoint, error) {
	m, err := newSPMetrics(rt.Registry)
	if err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	err = rt.Retry(ctx, "bind bucket "+topology.BucketThrottle, func(ctx context.Context) error {
		var berr error
		kv, berr = rt.JS.KeyValue(ctx, topology.BucketThrottle)
		return berr
	})
	if err != nil {
		return nil, err
	}
	sp := &SharePoint{m: m, policy: throttle.DefaultPolicy(Judge)}
	sp.budget = throttle.NewPaced(throttle.NewKV(kv, throttle.Clock{}), throttle.PacedOptions{
		MaxWait: maxWait, Logger: rt.Log, OnWait: m.wait})
	if sp.Client, err = cfg.NewClient(sp.observe); err != nil {
		return nil, fmt.Errorf("sharepoint client: %w", err)
	}
	return sp, nil
}

// WithRetries returns a caller that retries a transient failure at most n times within a call,
// waiting at most maxDelay between tries (the relay polls again soon anyway).
func (sp *SharePoint) WithRetries(n int, maxDelay time.Duration) *SharePoint {
	c := *sp
	c.policy.MaxRetries, c.policy.MaxDelay = n, maxDelay
	return &c
}

// Call makes one SharePoint call on site's host through the budget: it waits out short pauses of
// the host, returns *throttle.LongPause for long ones (Verdict: throttled, the message comes
// back after the pause), pauses the host on a 429/503 and tries again, and retries transient
// failures a few times.
func Call[T any](ctx context.Context, sp *SharePoint, site string, fn func(context.Context) (T, error)) (T, error) {
	return throttle.Do(ctx, sp.budget, HostOf(site), sp.policy, fn)
}

// HostOf is the lower-case host name of a URL: the throttling budget's key ("" when it does not
// parse).
func HostOf(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return strings.ToLower(u.Hostname())
	}
	return ""
}

// observe counts every answer and lets the budget slow down on RateLimit-* headers.
func (sp *SharePoint) observe(o spo.Observation) {
	sp.m.responses.WithLabelValues(o.Host, o.Method, strconv.Itoa(o.Status)).Inc()
	if o.RetryAfterCapped {
		sp.m.capped.WithLabelValues(o.Host).Inc()
	}
	if sp.budget != nil {
		sp.budget.Observe(o)
	}
}

type spMetrics struct {
	responses   *prometheus.CounterVec
	capped      *prometheus.CounterVec
	waits       *prometheus.CounterVec
	waitSeconds *prometheus.CounterVec
}

func newSPMetrics(reg prometheus.Registerer) (*spMetrics, error) {
	m := &spMetrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_sharepoint_responses_total",
			Help: "SharePoint answers, by host, method and HTTP status (429 and 503 are throttling).",
		}, []string{"host", "method", "status"}),
		capped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_sharepoint_retry_after_capped_total",
			Help: "Retry-After waits longer than -sp-max-retry-after, capped to it, by host.",
		}, []string{"host"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_sharepoint_throttle_waits_total",
			Help: "Calls that found their host paused, by host and outcome (waited: in the handler; deferred: handed back to JetStream).",
		}, []string{"host", "outcome"}),
		waitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "amr_sharepoint_throttle_wait_seconds_total", Help: "Time handlers waited for a paused host, by host.",
		}, []string{"host"}),
	}
	for _, c := range []prometheus.Collector{m.responses, m.capped, m.waits, m.waitSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("sharepoint metrics: %w", err)
		}
	}
	return m, nil
}

// wait records one wait of the budget (throttle.PacedOptions.OnWait).
func (m *spMetrics) wait(host string, d time.Duration, deferred bool) {
	if deferred {
		m.waits.WithLabelValues(host, "deferred").Inc()
		return
	}
	m.waits.WithLabelValues(host, "waited").Inc()
	m.waitSeconds.WithLabelValues(host).Add(d.Seconds())
}
