package inventory

import "time"

// SetCheckpointEvery changes the checkpointer's spacing for a test and returns the old value.
func SetCheckpointEvery(d time.Duration) time.Duration {
	old := checkpointEvery
	checkpointEvery = d
	return old
}
