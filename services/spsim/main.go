// Command spsim is the SharePoint simulator: the AMR REST surface over a synthetic tenant, exporting
// real encrypted manifests into Azure Storage (usually Azurite). See README.md; the program is
// package app.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/services/spsim/app"
)

func main() { os.Exit(svc.Execute("spsim", app.NewMain(), os.Args[1:], os.Stderr)) }
