//go:build !purego

package aescbc

import "os"

// AMRPIPE_AESCBC_PORTABLE=1 runs the whole suite without the AES-NI kernel
// (as on a CPU without AES-NI). It runs before any test, so nothing races.
func init() {
	if os.Getenv("AMRPIPE_AESCBC_PORTABLE") == "1" {
		hasAESNI = false
	}
}
