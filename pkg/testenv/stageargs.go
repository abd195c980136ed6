package testenv

// This file is the configuration of a stage replica in a test environment: its command line and
// its secrets, as a deployment sets them.

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// StageFlags are what a stage replica's command line is made of.
type StageFlags struct {
	// NATSURL is the server's client URL.
	NATSURL string
	// HTTPAddr is where /healthz, /readyz and /metrics listen (default 127.0.0.1:0).
	HTTPAddr string
	// LogLevel of the replica.
	LogLevel string
	// Storage is the manifest storage account (its key goes to the environment: StageSecrets).
	Storage storage.Config
	// Small and Large are the planner's thresholds (0: the planner's defaults).
	Small, Large int64
	// Plaintext turns the submitter's encryption off.
	Plaintext bool
	// PollInterval is the relay's progress polling interval, for every state of a job.
	PollInterval time.Duration
	// Replicas is the topology's replica count the stage verifies (0: one).
	Replicas int
}

// StageArgs is the command line of a replica of stage d: the shared flags of the parts it uses,
// then its own. A caller may append more; a flag given twice takes its last value.
func StageArgs(d stage.Def, f StageFlags) []string {
	addr := f.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	args := []string{"-nats-url", f.NATSURL, "-http-addr", addr, "-log-level", f.LogLevel, "-otel", "none", "-drain-timeout", "5s",
		"-replicas", strconv.Itoa(max(f.Replicas, 1))}
	if d.Uses&stage.UsesSharePoint != 0 {
		args = append(args, "-sp-user-agent", "ISV|amrpipe|amrpipe-dev/0.1", "-sp-timeout", "1m")
	}
	if d.Uses&stage.UsesStorage != 0 {
		sc := f.Storage
		args = append(args, "-storage-blob-url", sc.BlobURL, "-storage-queue-url", sc.QueueURL,
			"-storage-account", sc.Account, "-manifest-container", sc.Container, "-report-queue", sc.Queue)
	}
	switch d.Name {
	case topology.StagePlanner:
		if f.Small > 0 {
			args = append(args, "-small", strconv.FormatInt(f.Small, 10))
		}
		if f.Large > 0 {
			args = append(args, "-large", strconv.FormatInt(f.Large, 10))
		}
	case topology.StageSubmitter:
		args = append(args, "-encrypt="+strconv.FormatBool(!f.Plaintext))
	case topology.StageRelay:
		if f.PollInterval > 0 {
			// The simulator's jobs take seconds, not hours: every pace is the short one.
			pi := f.PollInterval.String()
			args = append(args, "-poll-interval", pi, "-queued-poll-interval", pi, "-queue-poll-interval", pi)
		}
	}
	return args
}

// StageSecrets is the environment of every replica: the secrets, which are never flags. spToken
// is the simulator's bearer token, storageKey the account key, kek the key-encryption key.
func StageSecrets(spToken, storageKey string, kek []byte, kekID string) map[string]string {
	return map[string]string{
		spo.TokenEnv:     spToken,
		storage.KeyEnv:   storageKey,
		keywrap.EnvKEK:   base64.StdEncoding.EncodeToString(kek),
		keywrap.EnvKEKID: kekID,
	}
}
