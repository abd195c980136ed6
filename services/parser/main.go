// Command parser streams each decrypted package file (ManifestReady on amr.manifests.<jobID>) into
// typed records on amr.records.<jobID>, closes each job with a summary on amr.done.<jobID> and
// commits its change token. See README.md.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/parser"
)

func main() { os.Exit(stage.Execute(parser.Def(), os.Args[1:], os.Stderr)) }
