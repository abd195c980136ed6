// Command progress-relay follows every live AMR job through GetMigrationJobProgress (and the
// report queue, when one is configured) and publishes each distinct migration event once on
// amr.events.<jobID>.<Event>. See README.md.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/relay"
)

func main() { os.Exit(stage.Execute(relay.Def(), os.Args[1:], os.Stderr)) }
