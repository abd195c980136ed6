package demo

import (
	"fmt"
	"os"
	"path/filepath"
)

// Kept describes what a run cut short (Ctrl-C, a timeout) left in dir, one line per output, so
// nobody mistakes a partial file for a result: the inventory's passes that did not end are never
// a complete pass (no change set or validation takes one as its base), a report directory holds
// only the reports written before the stop. Empty when nothing was written.
func Kept(dir string) []string {
	var lines []string
	for _, o := range []struct{ name, why string }{
		{InventoryFile, "the records ingested before the stop; the passes that did not end stay incomplete, and no diff, change set or validation uses an incomplete pass as complete"},
		{RecordsFile, "the records written before the stop (partial)"},
		{ChangesFile, "the change set, written complete before the stop"},
		{ValidationDir, "the validation reports, written complete before the stop"},
		{RunReportDir, "the run reports written before the stop (some plans may have none)"},
	} {
		p := filepath.Join(dir, o.name)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		size := fi.Size()
		if fi.IsDir() {
			size = 0
			_ = filepath.WalkDir(p, func(_ string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if info, err := d.Info(); err == nil {
						size += info.Size()
					}
				}
				return nil
			})
		}
		lines = append(lines, fmt.Sprintf("%s (%s): %s", p, bytesText(size), o.why))
	}
	return lines
}

// bytesText is a size for people: 1.2 MB.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
