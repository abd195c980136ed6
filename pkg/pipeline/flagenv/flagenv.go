// Package flagenv gives every flag of a service an environment fallback: flag -max-manifest-mib of a
// service with prefix SPSIM reads SPSIM_MAX_MANIFEST_MIB when the flag is not on the command line.
// Precedence: command line, then environment, then the flag's default.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// EnvName is the environment variable that backs flag name under prefix.
func EnvName(prefix, name string) string {
	n := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	if prefix == "" {
		return n
	}
	return strings.ToUpper(prefix) + "_" + n
}

// Parse parses args into fs, then sets every flag not given on the command line from its
// environment variable, if present. lookup is os.LookupEnv in production.
func Parse(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		key := EnvName(prefix, f.Name)
		if v, ok := lookup(key); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("environment %s: %w", key, serr)
			}
		}
	})
	return err
}

// Usage appends the environment variable names to the flag set's usage output.
func Usage(fs *flag.FlagSet, prefix string) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(prefix, f.Name))
	})
}

// Or is v, or def when v is zero or negative: a configuration value left unset takes its
// default (cmp.Or for strings).
func Or[T ~int | ~int64 | ~float64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
