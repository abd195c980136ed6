package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/natsctx"
	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// Connection settings come, for each setting, from the flag when given, else from the first
// environment variable set, else from the nats CLI context (--context, NATS_CONTEXT, else the
// one `nats context select` chose), else the default: the nats CLI's order.
type connSetting struct {
	flag string
	env  []string
	ctx  func(*natsctx.Context) string
}

var (
	connURL   = connSetting{"nats-url", []string{"AMR_NATS_URL", "NATS_URL"}, func(c *natsctx.Context) string { return c.URL }}
	connUser  = connSetting{"nats-user", []string{"AMR_NATS_USER", "NATS_USER"}, func(c *natsctx.Context) string { return c.User }}
	connCreds = connSetting{"creds", []string{"NATS_CREDS"}, func(c *natsctx.Context) string { return c.Creds }}
	connNKey  = connSetting{"nkey", []string{"NATS_NKEY"}, func(c *natsctx.Context) string { return c.NKey }}
	connCert  = connSetting{"tlscert", []string{"NATS_CERT"}, func(c *natsctx.Context) string { return c.Cert }}
	connKey   = connSetting{"tlskey", []string{"NATS_KEY"}, func(c *natsctx.Context) string { return c.Key }}
	connCA    = connSetting{"tlsca", []string{"NATS_CA"}, func(c *natsctx.Context) string { return c.CA }}
	// Secrets have no flag: a command line is visible to every user of the machine.
	connPassword = connSetting{"", []string{svc.NATSPasswordEnv, "NATS_PASSWORD"}, func(c *natsctx.Context) string { return c.Password }}
	connToken    = connSetting{"", []string{"NATS_TOKEN"}, func(c *natsctx.Context) string { return c.Token }}
)

// addConnectionFlags declares the connection flags on the root and returns how commands connect.
func addConnectionFlags(root *cobra.Command) connectFunc {
	f := root.PersistentFlags()
	f.String(connURL.flag, "", "NATS server URL(s), comma-separated (AMR_NATS_URL, NATS_URL; default "+nats.DefaultURL+")")
	f.StringP("server", "s", "", "alias of --nats-url, as in the nats CLI")
	f.String("context", "", "nats CLI context to connect with (NATS_CONTEXT; default: the one selected with nats context select)")
	f.String(connUser.flag, "", "NATS user (AMR_NATS_USER, NATS_USER); its password is "+svc.NATSPasswordEnv+
		" (or the file "+svc.NATSPasswordEnv+flagenv.FileSuffix+" names) or NATS_PASSWORD")
	f.String(connCreds.flag, "", "NATS credentials file: user JWT and seed (NATS_CREDS)")
	f.String(connNKey.flag, "", "file holding the user's nkey seed (NATS_NKEY)")
	f.String(connCert.flag, "", "TLS client certificate, PEM (NATS_CERT)")
	f.String(connKey.flag, "", "TLS client certificate's private key, PEM (NATS_KEY)")
	f.String(connCA.flag, "", "CA certificates to trust for the server, PEM (NATS_CA)")
	return func(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
		return connectWith(ctx, root)
	}
}

// connectWith connects as the root's flags, the environment and the nats context say.
func connectWith(_ context.Context, root *cobra.Command) (*nats.Conn, jetstream.JetStream, error) {
	cs, err := resolveConn(root, os.LookupEnv)
	if err != nil {
		return nil, nil, err
	}
	opts, err := cs.options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(cs.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s%s: %w", sas.Redact(cs.URL), cs.via(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// connSettings is a resolved connection.
type connSettings struct {
	Context                                                string
	URL, User, Password, Token, Creds, NKey, Cert, Key, CA string
}

func (cs connSettings) via() string {
	if cs.Context == "" {
		return ""
	}
	return " (nats context " + cs.Context + ")"
}

// resolveConn applies flags over environment over context. A context named by --context or
// NATS_CONTEXT, or selected, that does not exist is an error wrapping ErrNotFound.
func resolveConn(root *cobra.Command, lookupEnv func(string) (string, bool)) (connSettings, error) {
	var fileErr error
	lookup := flagenv.WithFiles(lookupEnv, os.ReadFile, func(key string, err error) { fileErr = fmt.Errorf("%s%s: %w", key, flagenv.FileSuffix, err) })
	f := root.PersistentFlags()
	env := func(keys []string) (string, bool) {
		for _, k := range keys {
			if v, ok := lookup(k); ok && v != "" {
				return v, true
			}
		}
		return "", false
	}
	name, _ := f.GetString("context")
	if !f.Changed("context") {
		name, _ = env([]string{"NATS_CONTEXT"})
	}
	var nctx *natsctx.Context
	dir, err := natsctx.Dir(func(k string) string { v, _ := lookupEnv(k); return v })
	if err != nil {
		return connSettings{}, err
	}
	if name == "" {
		if name, err = natsctx.Selected(dir); err != nil {
			return connSettings{}, err
		}
	}
	if name != "" {
		nctx, err = natsctx.Load(dir, name)
		if errors.Is(err, fs.ErrNotExist) {
			return connSettings{}, fmt.Errorf("--context: %w: no context %q in %s", ErrNotFound, name, dir)
		}
		if errors.Is(err, natsctx.ErrBadName) {
			return connSettings{}, usageErrorf("--context: %v", err)
		}
		if err != nil {
			return connSettings{}, err
		}
	}
	get := func(s connSetting) string {
		if s.flag != "" && f.Changed(s.flag) {
			v, _ := f.GetString(s.flag)
			return v
		}
		if v, ok := env(s.env); ok {
			return v
		}
		if nctx != nil {
			return s.ctx(nctx)
		}
		return ""
	}
	cs := connSettings{URL: get(connURL), User: get(connUser), Password: get(connPassword), Token: get(connToken),
		Creds: get(connCreds), NKey: get(connNKey), Cert: get(connCert), Key: get(connKey), CA: get(connCA)}
	if f.Changed("server") {
		if f.Changed(connURL.flag) {
			return connSettings{}, usageErrorf("--server and --nats-url name the same setting: give one")
		}
		cs.URL, _ = f.GetString("server")
	}
	if fileErr != nil {
		return connSettings{}, fileErr
	}
	if cs.URL == "" {
		cs.URL = nats.DefaultURL
	}
	if nctx != nil {
		cs.Context = nctx.Name
	}
	if (cs.Cert == "") != (cs.Key == "") {
		return connSettings{}, usageErrorf("--tlscert and --tlskey go together (one is set, the other not)")
	}
	return cs, nil
}

// options are the nats.go options of a connection; one authentication, chosen as the nats CLI
// does: user and password, else a credentials file, else an nkey, else a token.
func (cs connSettings) options() ([]nats.Option, error) {
	opts := []nats.Option{nats.Name("amrctl"), nats.Timeout(10 * time.Second)}
	switch {
	case cs.User != "":
		opts = append(opts, nats.UserInfo(cs.User, cs.Password))
	case cs.Creds != "":
		opts = append(opts, nats.UserCredentials(cs.Creds))
	case cs.NKey != "":
		o, err := nats.NkeyOptionFromSeed(cs.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nkey %s: %w", cs.NKey, err)
		}
		opts = append(opts, o)
	case cs.Token != "":
		opts = append(opts, nats.Token(cs.Token))
	}
	if cs.Cert != "" {
		opts = append(opts, nats.ClientCert(cs.Cert, cs.Key))
	}
	if cs.CA != "" {
		opts = append(opts, nats.RootCAs(cs.CA))
	}
	return opts, nil
}
