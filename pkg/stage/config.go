package stage

import (
	"flag"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// Config is the part of a stage's configuration every stage shares; which parts a stage takes
// is its Def's Uses. A stage's own configuration is separate (Def.NewConfig).
type Config struct {
	// Service is the runtime: NATS, health and metrics address, logs, traces, drain.
	Service svc.Config
	// SharePoint reaches the tenant (UsesSharePoint).
	SharePoint spo.Config
	// MaxThrottleWait is the longest a handler waits for a paused host before handing its
	// message back to JetStream with the remaining pause as delay (UsesSharePoint).
	MaxThrottleWait time.Duration
	// Storage is the account SharePoint writes manifests and queue messages to (UsesStorage).
	Storage storage.Config
}

// DefaultMaxThrottleWait is -max-throttle-wait's default.
const DefaultMaxThrottleWait = 20 * time.Second

func (c *Config) register(fs *flag.FlagSet, uses Uses) {
	c.Service.RegisterFlags(fs)
	if uses&UsesSharePoint != 0 {
		c.SharePoint.RegisterFlags(fs)
		if c.MaxThrottleWait <= 0 {
			c.MaxThrottleWait = DefaultMaxThrottleWait
		}
		fs.DurationVar(&c.MaxThrottleWait, "max-throttle-wait", c.MaxThrottleWait,
			"longest wait for a throttled host inside a handler; longer pauses hand the message back")
	}
	if uses&UsesStorage != 0 {
		c.Storage.RegisterFlags(fs)
	}
}

// loadSecrets reads the secrets of the parts the stage uses from the environment.
func (c *Config) loadSecrets(lookup func(string) (string, bool), uses Uses) {
	c.Service.LoadSecrets(lookup)
	if uses&UsesSharePoint != 0 {
		c.SharePoint.LoadSecrets(lookup)
	}
	if uses&UsesStorage != 0 {
		c.Storage.LoadKey(lookup)
	}
}

func secrets(uses Uses) []string {
	out := []string{svc.NATSPasswordEnv}
	if uses&UsesSharePoint != 0 {
		out = append(out, spo.TokenEnv, spo.CertPasswordEnv)
	}
	if uses&UsesStorage != 0 {
		out = append(out, storage.KeyEnv)
	}
	if uses&UsesKEK != 0 {
		out = append(out, keywrap.EnvKEK, keywrap.EnvKEKID)
	}
	return out
}
