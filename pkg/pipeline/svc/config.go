package svc

import (
	"cmp"
	"flag"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
)

// Config is what every service is configured with. RegisterFlags binds it to flags, which
// pkg/pipeline/flagenv backs with environment variables.
type Config struct {
	// Name names the service: NATS connection name, service.name of traces, "service" log field.
	Name string
	// NATSURL is one or more comma-separated server URLs.
	NATSURL string
	// NATSCreds is a NATS credentials file (JWT and NKey seed); empty for none.
	NATSCreds string
	// NATSUser is the NATS user the service connects as (a server with users and permissions,
	// deploy/nats); its password is the secret NATSPassword. Empty for none.
	NATSUser string
	// NATSPassword is NATSUser's password, from the environment only (NATSPasswordEnv, or the
	// file NATSPasswordEnv_FILE names): LoadSecrets reads it.
	NATSPassword string
	// HTTPAddr serves /healthz, /readyz and /metrics.
	HTTPAddr string
	// Replicas of the streams and buckets: the least Verify accepts, and what ApplyTopology
	// applies: 1 embedded, 3 in production.
	Replicas int
	// ApplyTopology makes the service apply the topology (topology.Ensure) before verifying it,
	// as `amrctl topology apply` does: for the embedded stack and tests; production applies it
	// once with amrctl. Either way nothing is ever lowered.
	ApplyTopology bool
	// StreamMetricsInterval is how often the fill of every stream is sampled into the
	// amr_stream_* metrics (one STREAM.LIST request); 0 turns the sampling off.
	StreamMetricsInterval time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// OTel selects the trace exporter: auto (what OTEL_TRACES_EXPORTER lists, else OTLP when
	// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none), otlp,
	// stdout or none. OTLP is http/protobuf unless OTEL_EXPORTER_OTLP_PROTOCOL says grpc (in a
	// build with -tags otlpgrpc).
	OTel string
	// DrainTimeout bounds how long work in flight may finish after SIGTERM (bus.ConsumeOptions).
	DrainTimeout time.Duration
	// HandlerTimeout is the deadline of one message's handler (bus.ConsumeOptions); 0: none.
	HandlerTimeout time.Duration
	// MaxFailures and RetryMaxDelay shape the retries of a failing message (bus.ConsumeOptions):
	// counted failures before its dead letter, and the longest back-off between two tries.
	MaxFailures   int
	RetryMaxDelay time.Duration
}

// NATSPasswordEnv holds the password of -nats-user.
const NATSPasswordEnv = "AMR_NATS_PASSWORD"

// LoadSecrets reads the NATS password from the environment (never a flag, which shows in ps).
func (c *Config) LoadSecrets(lookup func(string) (string, bool)) {
	if v, ok := lookup(NATSPasswordEnv); ok {
		c.NATSPassword = v
	}
}

// RegisterFlags registers the common flags on fs with c's current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.NATSURL == "" {
		c.NATSURL = nats.DefaultURL
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS server URL(s), comma-separated")
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "NATS credentials file")
	fs.StringVar(&c.NATSUser, "nats-user", c.NATSUser, "NATS user to connect as; its password is "+NATSPasswordEnv)
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "listen address of /healthz, /readyz and /metrics")
	fs.IntVar(&c.Replicas, "replicas", max(c.Replicas, 1), "replicas of JetStream streams and buckets (3 in a cluster): the least accepted, and what -apply-topology applies")
	fs.BoolVar(&c.ApplyTopology, "apply-topology", c.ApplyTopology, "apply the topology (create what is missing, never lower anything) instead of only verifying it; production runs amrctl topology apply")
	fs.DurationVar(&c.StreamMetricsInterval, "stream-metrics-interval", flagenv.Or(c.StreamMetricsInterval, time.Minute),
		"how often the fill of every stream is sampled into the amr_stream_* metrics (0: never)")
	fs.StringVar(&c.LogLevel, "log-level", cmp.Or(c.LogLevel, "info"), "log level: debug, info, warn, error")
	fs.StringVar(&c.OTel, "otel", cmp.Or(c.OTel, "auto"), "trace exporter: auto (OTEL_TRACES_EXPORTER, else otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set), otlp, stdout, none")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", flagenv.Or(c.DrainTimeout, 30*time.Second), "time for work in flight to finish on shutdown")
	fs.IntVar(&c.MaxFailures, "max-failures", max(c.MaxFailures, topology.MaxFailures), "failures of a message (throttling not counted) before it is dead-lettered")
	fs.DurationVar(&c.RetryMaxDelay, "retry-max-delay", flagenv.Or(c.RetryMaxDelay, 5*time.Minute), "longest back-off between two tries of a failing message")
	fs.DurationVar(&c.HandlerTimeout, "handler-timeout", flagenv.Or(c.HandlerTimeout, 10*time.Minute),
		"deadline of one message's handler; a handler still running 30s after it is given up on (counted, and /readyz fails)")
}
