package bench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// CmdGoTable turns `go test -bench` output into a markdown table.
const CmdGoTable = "gotable"

// sample is every value one benchmark reported for one unit, over its runs (-count).
type sample struct {
	name, unit string
	values     []float64
}

// readBench reads `go test -bench` output (golang.org/x/perf/benchfmt) into samples in the order
// they first appear. The unit "ns/op" is kept; B/op and allocs/op are not.
func readBench(r io.Reader, file string) ([]*sample, error) {
	br := benchfmt.NewReader(r, file)
	var order []*sample
	byKey := map[[2]string]*sample{}
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // configuration lines, syntax errors of lines that are not results (PASS, logs)
		}
		name := benchName(res.Name)
		for _, v := range res.Values {
			if v.Unit == "B/op" || v.Unit == "allocs/op" {
				continue
			}
			k := [2]string{name, v.Unit}
			s := byKey[k]
			if s == nil {
				s = &sample{name: name, unit: v.Unit}
				byKey[k] = s
				order = append(order, s)
			}
			s.values = append(s.values, v.Value)
		}
	}
	if err := br.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return order, nil
}

// benchName is the benchmark's name without the GOMAXPROCS suffix ("ParseAndPublish/batch=256").
func benchName(n benchfmt.Name) string {
	base, parts := n.Parts()
	var sb strings.Builder
	sb.Write(base)
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			continue
		}
		sb.Write(p)
	}
	return sb.String()
}

// summary is "median (min–max)" of a sample, as the table shows it.
func summary(s *sample) string {
	if s == nil || len(s.values) == 0 {
		return "–"
	}
	v := slices.Sorted(slices.Values(s.values))
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return fmt.Sprintf("%s (%s–%s)", num(med), num(v[0]), num(v[len(v)-1]))
}

// num prints a figure with the precision its size needs.
func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

// goTable writes the markdown table of after's samples, with before's beside them when given:
// one row per benchmark and unit, the median and the range of the runs. units, when not empty,
// keeps only those units, in that order within each benchmark.
func goTable(w io.Writer, before, after []*sample, units []string) error {
	find := func(in []*sample, name, unit string) *sample {
		for _, s := range in {
			if s.name == name && s.unit == unit {
				return s
			}
		}
		return nil
	}
	keep := func(unit string) bool { return len(units) == 0 || slices.Contains(units, unit) }
	var names []string
	for _, s := range after {
		if !slices.Contains(names, s.name) {
			names = append(names, s.name)
		}
	}
	var sb strings.Builder
	if before != nil {
		sb.WriteString("| benchmark | unit | before: median (min–max) | after: median (min–max) | runs before / after |\n|---|---|---:|---:|---:|\n")
	} else {
		sb.WriteString("| benchmark | unit | median (min–max) | runs |\n|---|---|---:|---:|\n")
	}
	for _, name := range names {
		var unitsOf []string
		for _, s := range after {
			if s.name == name && keep(s.unit) {
				unitsOf = append(unitsOf, s.unit)
			}
		}
		if len(units) > 0 {
			slices.SortStableFunc(unitsOf, func(a, b string) int { return slices.Index(units, a) - slices.Index(units, b) })
		}
		for _, unit := range unitsOf {
			a := find(after, name, unit)
			if before != nil {
				b := find(before, name, unit)
				nb := 0
				if b != nil {
					nb = len(b.values)
				}
				fmt.Fprintf(&sb, "| %s | %s | %s | %s | %d / %d |\n", name, unit, summary(b), summary(a), nb, len(a.values))
			} else {
				fmt.Fprintf(&sb, "| %s | %s | %s | %d |\n", name, unit, summary(a), len(a.values))
			}
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// goTableFiles reads the files and writes the table.
func goTableFiles(w io.Writer, beforeFile, afterFile string, units []string) error {
	read := func(file string) ([]*sample, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("gotable: %w", err)
		}
		defer f.Close()
		return readBench(f, file)
	}
	after, err := read(afterFile)
	if err != nil {
		return err
	}
	var before []*sample
	if beforeFile != "" {
		if before, err = read(beforeFile); err != nil {
			return err
		}
		if before == nil {
			before = []*sample{}
		}
	}
	return goTable(w, before, after, units)
}
