package topology

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sizes.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// defaultMaxBytes is the size limit of every stream, bucket and object store, by the name an
// operator knows it by (the stream's, the bucket's). The file-stored defaults add up to about
// 14 GiB, under the 20 GB max_file_store of deploy/nats/nats.conf: JetStream reserves each
// stream's MaxBytes on every server holding a replica, and with R3 on three nodes every node holds
// one of each. The decrypted manifests' limit counts against max_memory_store instead
// (Options.ManifestStorage).
// docs/pipeline.md gives the reasoning of each; Options.MaxBytes (amrctl topology apply
// --max-bytes) changes them.
var defaultMaxBytes = map[string]int64{
	StreamPlans:         64 * MiB,  // plans are a few KB (at most 1 MiB, the max payload)
	StreamSpecs:         512 * MiB, // a spec of 5,000 URLs is about 0.5 MB
	StreamJobs:          1 * GiB,   // one message per live job: 10,000 live jobs of up to ~100 KB
	StreamEvents:        1 * GiB,   // ~1 KB per event, kept EventsMaxAge
	StreamManifests:     64 * MiB,  // references to decrypted manifests, ~300 B each
	StreamRecords:       6 * GiB,   // the output, kept until every downstream consumer read it
	StreamDone:          256 * MiB, // ~1 KB per job summary, kept JobRecordTTL
	StreamDLQ:           1 * GiB,   // a dead letter carries its message (up to 1 MiB)
	StreamChanges:       1 * GiB,   // change sets of inventory passes, ~150 B per change
	BucketKeys:          256 * MiB, // ~250 B per job, kept KeyLifetime (90 days): ~1M jobs
	BucketJobs:          1 * GiB,   // job records with their file lists, a few KB each
	BucketCursors:       64 * MiB,  // one short token per live job
	BucketSeen:          512 * MiB, // ~150 B per relayed event of a live job
	BucketTokens:        64 * MiB,  // one token per list
	BucketThrottle:      16 * MiB,  // one entry per tenant host
	BucketFailures:      64 * MiB,  // one counter per failing message
	BucketPlans:         1 * GiB,   // every planned spec (URL lists) of the plans kept
	BucketSubmissions:   256 * MiB, // one SubmittedJob per spec
	BucketParseProgress: 64 * MiB,  // ~200 B per file being parsed
	ObjectManifests:     1 * GiB,   // decrypted manifests waiting for the parser, in memory, compressed: ~300 of 25 MB
}

// fallbackMaxBytes is the limit of a store missing from defaultMaxBytes: none is unbounded.
const fallbackMaxBytes = 256 * MiB

// DefaultMaxBytes is the default size limit of a stream, bucket or object store of the topology.
func DefaultMaxBytes(name string) int64 {
	if n, ok := defaultMaxBytes[name]; ok {
		return n
	}
	return fallbackMaxBytes
}

// maxBytes is the size limit of name under o.
func (o Options) maxBytes(name string) int64 {
	if n, ok := o.MaxBytes[name]; ok && n > 0 {
		return n
	}
	return DefaultMaxBytes(name)
}

// ErrBadSize is returned by ParseBytes.
var ErrBadSize = errors.New("not a size")

var units = []struct {
	suffix string
	n      int64
}{ // longest suffixes first
	{"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseBytes reads a size such as "6GiB", "512 MiB", "20GB" or "1048576" (bytes).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.n
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: %q (a positive number of bytes, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", ErrBadSize, s)
	}
	return n * mult, nil
}

// FormatBytes writes n in the largest binary unit that divides it ("6 GiB", "1000 B").
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"TiB", 1 << 40}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + " " + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}
