// Package bench is the amrbench program behind scripts/bench.sh: one subcommand per process, so
// that /usr/bin/time can report each measurement's peak RSS.
//
//	gen -size 25000000 -seed 1 -out FILE   write a synthetic Manifest.xml
//	parse [-repeat N] FILE                 parse with pkg/sharepoint/manifest
//	parse-stdxml [-repeat N] FILE          same records, tokenized by encoding/xml
//	gotable [-before FILE] [-units U,...] FILE   `go test -bench` output as a markdown table
//
// gotable prints one row per benchmark and unit: the median and the range (min–max) of the runs
// (-count), and the same of the -before file beside it. gen prints one JSON line {file, bytes, records}; parse and parse-stdxml print one JSON line for
// the fastest (least CPU time) of N passes: bytes, records, seconds, cpu_seconds.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/manifest/manifestgen"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Subcommands.
const (
	CmdGen         = "gen"
	CmdParse       = "parse"
	CmdParseStdXML = "parse-stdxml"
)

// Main is amrbench in the svc.Program shape: ParseFlags reads the subcommand and its flags, Run
// does it and prints its JSON line, Close has nothing to release.
type Main struct {
	// Cmd is the subcommand: gen, parse or parse-stdxml.
	Cmd string

	// gen: approximate output size in bytes, generator seed, output file.
	Size    int64
	Seed    uint64
	OutPath string

	// parse, parse-stdxml: passes to make (the fastest is reported) and the file to parse.
	Repeat int
	File   string

	// gotable: the `go test -bench` output of the code before (optional), the units to show
	// (empty: all but B/op and allocs/op); File is the output of the code after.
	Before string
	Units  []string

	// Out receives the JSON result line; nil is os.Stdout.
	Out io.Writer
	// FlagOutput receives the flag package's usage and complaints; nil is os.Stderr.
	FlagOutput io.Writer
}

// NewMain returns the program writing its results to stdout.
func NewMain() *Main { return &Main{Out: os.Stdout} }

// ParseFlags reads the subcommand (args[0]) and its flags.
func (m *Main) ParseFlags(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: amrbench gen|parse|parse-stdxml|gotable ...")
	}
	m.Cmd = args[0]
	switch m.Cmd {
	case CmdGen:
		fs := m.flagSet(CmdGen)
		fs.Int64Var(&m.Size, "size", 25_000_000, "approximate output size in bytes")
		fs.Uint64Var(&m.Seed, "seed", 1, "generator seed")
		fs.StringVar(&m.OutPath, "out", "", "output file")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if m.OutPath == "" {
			return errors.New("gen: -out is required")
		}
	case CmdParse, CmdParseStdXML:
		// Both report as "parse", as they always have.
		fs := m.flagSet(CmdParse)
		fs.IntVar(&m.Repeat, "repeat", 1, "parse the file this many times and report the fastest pass")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("parse: want one file")
		}
		m.File = fs.Arg(0)
	case CmdGoTable:
		fs := m.flagSet(CmdGoTable)
		fs.StringVar(&m.Before, "before", "", "`go test -bench` output of the code before, shown beside")
		units := fs.String("units", "", "comma-separated units to show, in this order (default: all but B/op and allocs/op)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("gotable: want one file of `go test -bench` output")
		}
		m.File = fs.Arg(0)
		if *units != "" {
			m.Units = strings.Split(*units, ",")
		}
	default:
		return fmt.Errorf("unknown subcommand %q", m.Cmd)
	}
	return nil
}

func (m *Main) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if m.FlagOutput != nil {
		fs.SetOutput(m.FlagOutput)
	}
	return fs
}

// Run runs the subcommand and prints its JSON line. An interrupted run is a failure (not the clean
// stop that a cancelled context is for a service), so that scripts never take it for a result.
func (m *Main) Run(ctx context.Context) error {
	out := m.Out
	if out == nil {
		out = os.Stdout
	}
	var err error
	switch m.Cmd {
	case CmdGen:
		err = m.gen(ctx, out)
	case CmdParse, CmdParseStdXML:
		err = m.parse(ctx, out)
	case CmdGoTable:
		err = goTableFiles(out, m.Before, m.File, m.Units)
	default:
		return fmt.Errorf("unknown subcommand %q", m.Cmd)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s interrupted: %v", m.Cmd, err) // %v: not a clean stop
	}
	return err
}

// Close releases nothing: every file is closed by Run.
func (m *Main) Close() error { return nil }

func (m *Main) gen(ctx context.Context, out io.Writer) (err error) {
	f, err := os.Create(m.OutPath)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("gen: close %s: %w", m.OutPath, cerr)
		}
	}()
	st, err := manifestgen.Write(ctxWriter{ctx, f}, manifestgen.Config{Seed: m.Seed, TargetBytes: m.Size, Tricky: true})
	if err != nil {
		return fmt.Errorf("gen %s: %w", m.OutPath, err)
	}
	return json.NewEncoder(out).Encode(map[string]any{"file": m.OutPath, "bytes": st.Bytes, "records": st.Records})
}

// ctxWriter fails its writes once ctx has ended, so that gen stops on SIGINT.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func (m *Main) parse(ctx context.Context, out io.Writer) error {
	stdlib := m.Cmd == CmdParseStdXML
	best := map[string]any{}
	bestCPU := -1.0
	for i := 0; i < max(1, m.Repeat); i++ {
		res, err := parseOnce(ctx, m.File, stdlib)
		if err != nil {
			return err
		}
		if cpu := res["cpu_seconds"].(float64); bestCPU < 0 || cpu < bestCPU {
			best, bestCPU = res, cpu
		}
	}
	return json.NewEncoder(out).Encode(best)
}

// parseOnce parses the file and returns its size, record count and the wall
// and CPU time taken.
func parseOnce(ctx context.Context, path string, stdlib bool) (res map[string]any, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("parse: close: %w", cerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	records := 0
	opts := manifest.Options{JobID: "bench", SourceFile: filepath.Base(path), StdlibXML: stdlib}
	err = manifest.Parse(ctx, f, opts, func(*amrpipev1.Record) error {
		records++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return map[string]any{"bytes": fi.Size(), "records": records, "seconds": time.Since(start).Seconds(), "cpu_seconds": cpuSeconds() - cpu0}, nil
}

// cpuSeconds returns the user+system CPU time of this process (all threads,
// GC included). On a shared machine it is steadier than wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
