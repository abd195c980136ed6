// Package app is the SharePoint simulator program: its flags (each with an SPSIM_* environment
// fallback), the storage account key read from the environment, and its run: the AMR REST surface
// over a synthetic tenant, served over HTTP until the context ends. services/spsim's main only
// wires it to svc.Execute.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/services/spsim/server"
	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

// EnvPrefix prefixes the environment fallback of every flag: -max-manifest-mib is
// SPSIM_MAX_MANIFEST_MIB.
const EnvPrefix = "SPSIM"

// KeyEnv is the environment variable holding the storage account key. The key is a secret: it is
// read from the environment only, never from a flag (flags show in ps).
const KeyEnv = "SPSIM_STORAGE_KEY"

// Main holds the simulator's configuration and running parts.
type Main struct {
	Listen         string
	Token          string
	ProfilePath    string
	Profile        string
	Seed           int64
	Rate           float64
	Workers        int
	MaxManifestMiB int
	Admin          bool
	FaultsPath     string
	// ManifestFolderTotals writes SMTotalFileCount and SMTotalSize into folder items of the
	// manifests (server.Config.ManifestFolderTotals); off by default.
	ManifestFolderTotals bool
	// Destination, when not empty, serves the destination tenant of the profile instead
	// (tenant.NewDestination): "SRC=DST" site mappings separated by commas, with
	// DestinationSeed, DestinationPerKind and DestinationLoginDomain.
	Destination            string
	DestinationSeed        int64
	DestinationPerKind     int
	DestinationLoginDomain string
	Storage                storage.Config
	LogLevel               string

	// Lookup reads the environment (the SPSIM_* fallbacks and SPSIM_STORAGE_KEY); nil is
	// os.LookupEnv.
	Lookup func(string) (string, bool)
	// Log receives the JSON log; nil is os.Stderr.
	Log io.Writer

	srv *server.Server

	mu   sync.Mutex
	addr net.Addr
}

// NewMain returns the simulator program reading the process's environment and logging to stderr.
func NewMain() *Main {
	return &Main{Lookup: os.LookupEnv, Log: os.Stderr}
}

// ParseFlags reads flags, each with an SPSIM_* environment fallback (see README.md), and the
// storage account key from SPSIM_STORAGE_KEY or the file SPSIM_STORAGE_KEY_FILE names.
func (m *Main) ParseFlags(args []string) error {
	lookup := m.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	fs := flag.NewFlagSet("spsim", flag.ContinueOnError)
	fs.StringVar(&m.Listen, "listen", "127.0.0.1:8787", "address to serve the REST surface on")
	fs.StringVar(&m.Token, "token", "spsim-dev-token", "bearer token clients must send")
	fs.StringVar(&m.Profile, "profile", "default", "built-in tenant profile: default or small")
	fs.StringVar(&m.ProfilePath, "profile-file", "", "JSON tenant profile; overrides -profile")
	fs.Int64Var(&m.Seed, "seed", 0, "tenant seed; 0 keeps the profile's")
	fs.Float64Var(&m.Rate, "rate", 400, "export rate in objects/s per job, like SharePoint's lab figure; 0 = unlimited")
	fs.IntVar(&m.Workers, "workers", 4, "jobs processed at once; SharePoint queues the rest")
	fs.IntVar(&m.MaxManifestMiB, "max-manifest-mib", 25, "manifest split size in MiB")
	fs.BoolVar(&m.Admin, "admin", false, "serve the test-only /_spsim/ admin API")
	fs.StringVar(&m.FaultsPath, "faults", "", "JSON file of faults to inject from the start")
	fs.BoolVar(&m.ManifestFolderTotals, "manifest-folder-totals", false,
		"write SMTotalFileCount and SMTotalSize into folder items of the manifests (undocumented for AMR)")
	fs.StringVar(&m.Destination, "destination", "",
		"serve a destination tenant: a copy of the profile's sites SRC=DST[,SRC=DST] with seeded differences (GET /_spsim/differences)")
	fs.Int64Var(&m.DestinationSeed, "destination-seed", 1, "seed choosing the destination's differing items")
	fs.IntVar(&m.DestinationPerKind, "destination-differences", 2, "differences seeded per kind in the destination tenant")
	fs.StringVar(&m.DestinationLoginDomain, "destination-login-domain", tenant.DefaultDestinationLoginDomain, "login and e-mail domain of the destination's users")
	fs.StringVar(&m.Storage.BlobURL, "storage-blob-url", "", "blob endpoint ProvisionMigrationContainers creates containers in, e.g. Azurite's")
	fs.StringVar(&m.Storage.Account, "storage-account", "devstoreaccount1", "storage account name")
	fs.StringVar(&m.LogLevel, "log-level", "info", "debug, info, warn or error")
	flagenv.Usage(fs, EnvPrefix)
	if err := flagenv.Parse(fs, EnvPrefix, args, lookup); err != nil {
		return err
	}
	// The key may come from the file SPSIM_STORAGE_KEY_FILE names (a container secret).
	var fileErr error
	m.Storage.Key, _ = flagenv.WithFiles(lookup, os.ReadFile, func(_ string, err error) { fileErr = err })(KeyEnv)
	if fileErr != nil {
		return fileErr
	}
	if m.Storage.BlobURL != "" && m.Storage.Key == "" {
		return errors.New("-storage-blob-url needs " + KeyEnv + " in the environment")
	}
	return nil
}

// Run serves until ctx ends, then drains for up to ten seconds.
func (m *Main) Run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.LogLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	w := m.Log
	if w == nil {
		w = os.Stderr
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	t, err := m.tenant()
	if err != nil {
		return err
	}
	cfg := server.Config{Tenant: t, Token: m.Token, Rate: m.Rate, Workers: m.Workers,
		MaxManifestBytes: m.MaxManifestMiB << 20, Admin: m.Admin, ManifestFolderTotals: m.ManifestFolderTotals, Logger: log}
	if m.Storage.BlobURL != "" {
		if cfg.Storage, err = storage.Open(m.Storage); err != nil {
			return err
		}
	}
	if m.FaultsPath != "" {
		if cfg.Faults, err = server.LoadRules(m.FaultsPath); err != nil {
			return err
		}
	}
	if m.srv, err = server.New(cfg); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.Listen, err)
	}
	m.mu.Lock()
	m.addr = ln.Addr()
	m.mu.Unlock()
	hs := &http.Server{Handler: m.srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("spsim listening", "addr", ln.Addr().String(), "admin", m.Admin, "rate", m.Rate)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Addr is the address Run listens on (the port chosen when -listen asked for port 0), or nil
// before Run has started listening.
func (m *Main) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.addr
}

func (m *Main) tenant() (*tenant.Tenant, error) {
	var p tenant.Profile
	switch {
	case m.ProfilePath != "":
		var err error
		if p, err = tenant.LoadProfile(m.ProfilePath); err != nil {
			return nil, err
		}
	case m.Profile == "default":
		p = tenant.DefaultProfile()
	case m.Profile == "small":
		p = tenant.SmallProfile()
	default:
		return nil, fmt.Errorf("unknown profile %q (default, small, or -profile-file)", m.Profile)
	}
	if m.Seed != 0 {
		p.Seed = m.Seed
	}
	if m.Destination == "" {
		return tenant.New(p)
	}
	sites, err := ParseSiteMap(m.Destination)
	if err != nil {
		return nil, err
	}
	perKind := m.DestinationPerKind
	if perKind == 0 {
		perKind = -1 // the flag's 0 means none; the spec's 0 means its default
	}
	return tenant.NewDestination(p, tenant.DestinationSpec{Sites: sites, Seed: m.DestinationSeed, PerKind: perKind,
		LoginDomain: m.DestinationLoginDomain})
}

// ParseSiteMap reads -destination: "SRC=DST" pairs separated by commas.
func ParseSiteMap(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		from, to, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("-destination: %q is not SRC=DST", pair)
		}
		if _, dup := out[from]; dup {
			return nil, fmt.Errorf("-destination: site %s mapped twice", from)
		}
		out[from] = to
	}
	return out, nil
}

// Close stops the job workers.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	return m.srv.Close()
}
