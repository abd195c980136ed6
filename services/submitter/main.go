// Command submitter is amrpipe's submitter stage: it turns AMR job specs (amr.specs.<planID>) into
// SharePoint AMR jobs, stores each job's key wrapped before the create call, and announces the jobs
// to the progress-relay (amr.jobs.submitted.<jobID>). See README.md for its flags, environment,
// subjects, buckets and metrics.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/submitter"
)

func main() { os.Exit(stage.Execute(submitter.Def(), os.Args[1:], os.Stderr)) }
