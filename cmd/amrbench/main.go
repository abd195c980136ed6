// Command amrbench drives the parser benchmark of scripts/bench.sh. Each
// measurement runs as its own process so that /usr/bin/time can report its
// peak RSS.
//
//	amrbench gen -size 25000000 -seed 1 -out FILE   write a synthetic Manifest.xml
//	amrbench parse [-repeat N] FILE                 parse with pkg/sharepoint/manifest
//	amrbench parse-stdxml [-repeat N] FILE          same records, tokenized by encoding/xml
//	amrbench gotable [-before FILE] [-units U,...] FILE   `go test -bench` output as a markdown table
//
// parse and parse-stdxml print one JSON line for the fastest of N passes:
// bytes, records, seconds, cpu_seconds. The program is package internal/bench.
package main

import (
	"os"

	"github.com/amrpipe/amrpipe/cmd/amrbench/internal/bench"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
)

func main() { os.Exit(svc.Execute("amrbench", bench.NewMain(), os.Args[1:], os.Stderr)) }
