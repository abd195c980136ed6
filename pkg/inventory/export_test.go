package inventory

import "time"

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
