// Package natsctx reads the connection contexts of the nats CLI (`nats context add`), so that
// amrctl connects to a NATS system the way the operator's other tools already do.
//
// A context is a JSON file $XDG_CONFIG_HOME/nats/context/<name>.json (~/.config/nats when
// XDG_CONFIG_HOME is unset); the selected one is named in nats/context.txt. The field names are
// those of github.com/nats-io/jsm.go/natscontext (settings), which the nats CLI writes. This is a
// small reader rather than that dependency: amrctl needs eight fields of a file, and jsm.go would
// bring the whole JetStream management library (and its nsc lookups, which run a program) into
// every amrctl build.
package natsctx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Context is one nats CLI context. File fields (Creds, NKey, Cert, Key, CA) are paths, with a
// leading "~/" expanded to the home directory.
type Context struct {
	// Name is the context's name; Path the file it was read from.
	Name string `json:"-"`
	Path string `json:"-"`

	Description string `json:"description"`
	// URL is one or more comma-separated server URLs.
	URL      string `json:"url"`
	Token    string `json:"token"`
	User     string `json:"user"`
	Password string `json:"password"`
	// Creds is a credentials file (JWT and seed); NKey a file holding an nkey seed.
	Creds string `json:"creds"`
	NKey  string `json:"nkey"`
	// Cert and Key are the TLS client certificate and its key; CA the roots to trust.
	Cert string `json:"cert"`
	Key  string `json:"key"`
	CA   string `json:"ca"`
}

// ErrBadName is returned for a context name that could escape the context directory.
var ErrBadName = errors.New("invalid context name")

// Dir is the nats CLI's configuration directory: $XDG_CONFIG_HOME/nats, or ~/.config/nats.
func Dir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("nats contexts: %w", err)
	}
	return filepath.Join(home, ".config", "nats"), nil
}

// Selected is the name of the context selected with `nats context select` ("" when none).
func Selected(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "context.txt"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("selected nats context: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Load reads the context name from dir. A context that does not exist is an error wrapping
// fs.ErrNotExist and naming the file.
func Load(dir, name string) (*Context, error) {
	if name == "" || strings.Contains(name, "..") || strings.ContainsAny(name, `/\`) {
		return nil, fmt.Errorf("%w %q", ErrBadName, name)
	}
	path := filepath.Join(dir, "context", name+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nats context %q: %w", name, err)
	}
	c := &Context{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("nats context %q (%s): %w", name, path, err)
	}
	c.Name, c.Path = name, path
	for _, p := range []*string{&c.Creds, &c.NKey, &c.Cert, &c.Key, &c.CA} {
		*p = expandHome(*p)
	}
	return c, nil
}

// expandHome expands a leading "~/", as the nats CLI does for the paths it stores.
func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, rest)
}
