// Package flagenv gives every flag of a service an environment fallback: flag -max-manifest-mib of a
// service with prefix SPSIM reads SPSIM_MAX_MANIFEST_MIB when the flag is not on the command line.
// Precedence: command line, then environment, then the flag's default.
//
// WithFiles adds the *_FILE convention of container secrets: a variable that is not set is read
// from the file its NAME_FILE variable names (AMR_KEK from AMR_KEK_FILE=/run/secrets/amr_kek), so
// a secret never has to sit in the process's environment. Services read secrets through it, not
// flags: a flag named x-file already owns X_FILE as its own variable.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// FileSuffix is appended to a variable's name to name the file that holds its value (WithFiles).
const FileSuffix = "_FILE"

// WithFiles returns a lookup that answers key from lookup, or, when key is not set there and
// key+FileSuffix is, from the content of the file it names, without the trailing line break an
// editor or `echo` leaves. readFile is os.ReadFile in production. A file that cannot be read
// is reported through onErr (nil: ignored) and the key is treated as unset, since a lookup
// cannot fail; the callers then refuse the missing secret with their own error.
func WithFiles(lookup func(string) (string, bool), readFile func(string) ([]byte, error), onErr func(key string, err error)) func(string) (string, bool) {
	return func(key string) (string, bool) {
		if v, ok := lookup(key); ok {
			return v, true
		}
		path, ok := lookup(key + FileSuffix)
		if !ok || path == "" {
			return "", false
		}
		b, err := readFile(path)
		if err != nil {
			if onErr != nil {
				onErr(key, fmt.Errorf("%s%s=%s: %w", key, FileSuffix, path, err))
			}
			return "", false
		}
		return strings.TrimRight(string(b), "\r\n"), true
	}
}

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
