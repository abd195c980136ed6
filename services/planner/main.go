// Command planner is amrpipe's planner stage: it turns plans (amr.plans.submit) and probe results
// (amr.plans.probe) into AMR job specs (amr.specs.<planID>), sizing folders through SharePoint's
// REST API. See README.md for its flags, environment, subjects, buckets and metrics.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/planner"
)

func main() { os.Exit(stage.Execute(planner.Def(), os.Args[1:], os.Stderr)) }
