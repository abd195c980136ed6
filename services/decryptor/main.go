// Command decryptor decrypts each package file SharePoint announces (FinishManifestFileUpload)
// from the manifest container into the amr_manifests object store and tells the parser with
// ManifestReady on amr.manifests.<jobID>. See README.md.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/pkg/stage"
	"github.com/amrpipe/amrpipe/pkg/stage/decryptor"
)

func main() { os.Exit(stage.Execute(decryptor.Def(), os.Args[1:], os.Stderr)) }
