package inventory

import (
	"context"
	"time"
)

// SetCheckpointEvery changes the checkpointer's spacing for a test and returns the old value.
func SetCheckpointEvery(d time.Duration) time.Duration {
	old := checkpointEvery
	checkpointEvery = d
	return old
}

// SetObjectKey replaces how s keys objects (objectKey), for a test of two objects whose keys
// collide.
func SetObjectKey(s *Store, f func(tenant, typ, id string) int64) { s.key = f }

// ObjectKey is objectKey.
func ObjectKey(tenant, typ, id string) int64 { return objectKey(tenant, typ, id) }

// RekeyObjects rebuilds s's objects table as Open's migration does, whatever its layout: what a
// second process that found the same old inventory does after the first migrated it.
func RekeyObjects(ctx context.Context, s *Store) error { return s.rekeyObjects(ctx) }
