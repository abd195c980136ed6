package chaos

// This file brings the system under test up as separate processes: nats-server, Azurite, the
// simulator and one process per stage, with the blob fault proxy (in the harness) between the
// decryptor and Azurite.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/stage/registry"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

// simToken is the simulator's bearer token; reportQueue the Azure Queue SharePoint reports to.
const (
	simToken    = "chaos-token"
	reportQueue = "amr-reports"
	kekID       = "chaos"
)

// Stack is the system under test.
type Stack struct {
	// Dir holds the logs, the JetStream store and Azurite's workspace.
	Dir string
	// NATS is nats-server; URL its client URL.
	NATS *Proc
	URL  string
	// Azurite is the storage emulator; Storage the stages' configuration for it (the decryptor's
	// blob endpoint is Proxy's).
	Azurite *testenv.Azurite
	Storage storage.Config
	Proxy   *BlobProxy
	// Sim is the simulator; SimURL its base URL (site URLs are SimURL + path).
	Sim    *Proc
	SimURL string
	// Stages are the five stage processes in pipeline order.
	Stages []*Proc
	// Conn, JS and Store are the harness's own view of JetStream.
	Conn  *nats.Conn
	JS    jetstream.JetStream
	Store *jobstore.Store
	// KEK is the stages' key-encryption key: the harness opens job keys with it to forge.
	KEK *keywrap.KEK
}

// StartStack starts everything in dir from the binaries in bin. victim decides which jobs'
// blobs fail for good (nil: none).
func StartStack(ctx context.Context, cfg Config, dir, bin string, victim func(context.Context, *Stack, string) (bool, error)) (_ *Stack, err error) {
	s := &Stack{Dir: dir}
	defer func() {
		if err != nil { // what started is stopped (the returns below leave s as it is)
			err = errors.Join(fmt.Errorf("start the stack: %w", err), s.Close())
		}
	}()
	if err := s.startNATS(ctx, bin); err != nil {
		return nil, err
	}
	// The harness rides out the nats-server restart too.
	if s.Conn, s.JS, s.Store, err = testenv.OpenPipeline(ctx, s.URL, "chaos-harness", 1, nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond)); err != nil {
		return nil, err
	}
	if s.Azurite, err = testenv.StartAzurite(ctx, testenv.AzuriteOptions{Dir: filepath.Join(dir, "azurite")}); err != nil {
		return nil, err
	}
	s.Storage = s.Azurite.StorageConfig()
	s.Storage.Queue = reportQueue
	var pick func(context.Context, string) (bool, error)
	if victim != nil {
		pick = func(ctx context.Context, jobID string) (bool, error) { return victim(ctx, s, jobID) }
	}
	if s.Proxy, err = StartBlobProxy(s.Storage.BlobURL, pick, cfg.VictimFile); err != nil {
		return nil, err
	}
	if err := s.startSim(ctx, cfg, bin); err != nil {
		return nil, err
	}
	key := make([]byte, keywrap.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if s.KEK, err = keywrap.New(kekID, key); err != nil {
		return nil, err
	}
	env := environ(testenv.StageSecrets(simToken, s.Storage.Key, key, kekID))
	for _, d := range registry.All() {
		port, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := testenv.StageArgs(d, testenv.StageFlags{NATSURL: s.URL, HTTPAddr: addr, LogLevel: "info", Storage: s.Storage,
			Small: cfg.Small, Large: cfg.Large, PollInterval: cfg.PollInterval})
		if d.Name == topology.StageDecryptor {
			// Through the fault proxy; a file throttled past the budget fails after three tries.
			args = append(args, "-storage-blob-url", s.Proxy.URL, "-throttle-budget", cfg.ThrottleBudget.String(),
				"-max-failures", "3", "-retry-max-delay", "2s")
		}
		p := &Proc{Name: d.Name, Bin: filepath.Join(bin, d.Name), Args: args, Env: env,
			LogPath: filepath.Join(dir, d.Name+".log"), Ready: httpReady("http://" + addr + "/readyz")}
		s.Stages = append(s.Stages, p)
		if err := p.Start(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) startNATS(ctx context.Context, bin string) error {
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	s.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	// The storage budgets in a config file (no flag sets them): by default JetStream budgets 75% of
	// the free disk, and the topology's file-stored size limits (about 14 GiB, reserved, not
	// taken) were refused on a machine with 21 GB free; the decrypted manifests are in memory.
	conf := filepath.Join(s.Dir, "nats-server.conf")
	body := fmt.Sprintf("jetstream {\n  store_dir: %q\n  max_file_store: %d\n  max_memory_store: %d\n}\n", filepath.Join(s.Dir, "jetstream"),
		int64(testenv.ServerStoreLimit), int64(testenv.ServerMemoryLimit))
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return err
	}
	s.NATS = &Proc{Name: progNATS, Bin: filepath.Join(bin, progNATS), Env: environ(nil), LogPath: filepath.Join(s.Dir, progNATS+".log"),
		Args:  []string{"-c", conf, "-p", strconv.Itoa(port), "-a", "127.0.0.1"},
		Ready: natsReady(s.URL)}
	return s.NATS.Start(ctx)
}

func (s *Stack) startSim(ctx context.Context, cfg Config, bin string) error {
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.SimURL = "http://" + addr
	s.Sim = &Proc{Name: progSim, Bin: filepath.Join(bin, progSim), LogPath: filepath.Join(s.Dir, progSim+".log"),
		Env: environ(map[string]string{"SPSIM_TOKEN": simToken, "SPSIM_STORAGE_KEY": s.Storage.Key}),
		Args: []string{"-listen", addr, "-profile", cfg.Profile, "-rate", strconv.FormatFloat(cfg.SimRate, 'f', -1, 64),
			"-workers", strconv.Itoa(cfg.SimWorkers), "-max-manifest-mib", strconv.Itoa(cfg.MaxManifestMiB), "-admin",
			"-storage-blob-url", s.Storage.BlobURL, "-storage-account", s.Storage.Account},
		Ready: tcpReady(addr)}
	return s.Sim.Start(ctx)
}

// SiteURL is the absolute URL of a server-relative path on the simulator.
func (s *Stack) SiteURL(path string) string { return s.SimURL + path }

// Stage returns a stage's process.
func (s *Stack) Stage(name string) *Proc {
	for _, p := range s.Stages {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Connect opens another connection, for reading a large stream without holding up the harness's.
func (s *Stack) Connect() (*nats.Conn, jetstream.JetStream, error) {
	return testenv.Connect(s.URL, "chaos-reader")
}

// Procs are every process of the stack.
func (s *Stack) Procs() []*Proc {
	var out []*Proc
	for _, p := range append([]*Proc{s.NATS, s.Sim}, s.Stages...) {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Close stops everything: the stages first (they drain), then the rest.
func (s *Stack) Close() error {
	var errs []error
	for i := len(s.Stages) - 1; i >= 0; i-- {
		errs = append(errs, s.Stages[i].Stop(10*time.Second))
	}
	if s.Sim != nil {
		errs = append(errs, s.Sim.Stop(10*time.Second))
	}
	if s.Proxy != nil {
		errs = append(errs, s.Proxy.Close())
	}
	if s.Azurite != nil {
		errs = append(errs, s.Azurite.Close())
	}
	if s.Conn != nil {
		s.Conn.Close()
	}
	if s.NATS != nil {
		errs = append(errs, s.NATS.Stop(10*time.Second))
	}
	return errors.Join(errs...)
}

// httpReady is ready once GET url answers 200 (a stage's /readyz).
func httpReady(u string) func(context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
		return nil
	}
}

// tcpReady is ready once addr accepts connections.
func tcpReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// natsReady is ready once JetStream answers on u.
func natsReady(u string) func(context.Context) error {
	return func(ctx context.Context) error {
		nc, err := nats.Connect(u, nats.Name("chaos-probe"), nats.Timeout(time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err = js.AccountInfo(actx)
		return err
	}
}

// jobPaths are the server-relative paths of a job's URLs, lower case (SharePoint's URLs compare
// without regard to case), decoded.
func jobPaths(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		p := u
		if pu, err := url.Parse(u); err == nil {
			p = pu.Path
		}
		out = append(out, strings.ToLower(strings.TrimSuffix(p, "/")))
	}
	return out
}
