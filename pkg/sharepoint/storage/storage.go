// Package storage is amrpipe's access to the Azure Storage account that receives AMR manifests and,
// optionally, SharePoint's report queue messages. The services mint the SAS URLs they hand to
// SharePoint from the account key, so no SAS ever travels on a subject.
package storage

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"
)

// KeyEnv is the environment variable holding the account key: a secret, so never a flag.
const KeyEnv = "AMR_STORAGE_KEY"

// Config locates the storage account.
type Config struct {
	BlobURL  string // e.g. https://acct.blob.core.windows.net/ or Azurite's http://127.0.0.1:10000/devstoreaccount1/
	QueueURL string // e.g. https://acct.queue.core.windows.net/
	Account  string
	Key      string // from KeyEnv
	// Container is the manifest container SharePoint writes into (jobs use "<JobId>/" inside it).
	Container string
	// Queue is the report queue; empty means progress comes from GetMigrationJobProgress only.
	Queue string
	// SASTTL is how long the SAS URLs given to SharePoint stay valid.
	SASTTL time.Duration
}

// RegisterFlags adds the storage flags; the key comes from KeyEnv (see LoadKey).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.BlobURL, "storage-blob-url", "", "blob endpoint of the manifest storage account")
	fs.StringVar(&c.QueueURL, "storage-queue-url", "", "queue endpoint of the storage account (for the report queue)")
	fs.StringVar(&c.Account, "storage-account", "", "storage account name (key in "+KeyEnv+")")
	fs.StringVar(&c.Container, "manifest-container", "amr-manifests", "container SharePoint writes manifests into")
	fs.StringVar(&c.Queue, "report-queue", "", "Azure Queue SharePoint also reports events to; empty: progress API only")
	fs.DurationVar(&c.SASTTL, "sas-ttl", 7*24*time.Hour, "validity of the SAS URLs handed to SharePoint")
}

// LoadKey reads the account key from the environment.
func (c *Config) LoadKey(lookup func(string) (string, bool)) {
	if v, ok := lookup(KeyEnv); ok {
		c.Key = v
	}
}

// Account is an opened storage account.
type Account struct {
	cfg   Config
	cred  *azblob.SharedKeyCredential
	qcred *azqueue.SharedKeyCredential
	blob  *azblob.Client
	queue *azqueue.ServiceClient

	// ensured is when each container was last known to exist: a submitter signs a SAS per job,
	// and one create call per job is a storage transaction (and, on Azurite, a request) for nothing.
	mu      sync.Mutex
	ensured map[string]time.Time
}

// ensuredFor is how long a container known to exist is not created again; a container deleted
// meanwhile is found again at most this late.
const ensuredFor = 10 * time.Minute

// ErrNotConfigured is returned when the account is missing something it needs.
var ErrNotConfigured = errors.New("storage not configured")

// Open builds clients for the account; their calls are traced (TracePolicy).
func Open(cfg Config) (*Account, error) {
	if cfg.BlobURL == "" || cfg.Account == "" || cfg.Key == "" {
		return nil, fmt.Errorf("%w: need -storage-blob-url, -storage-account and %s", ErrNotConfigured, KeyEnv)
	}
	if cfg.SASTTL <= 0 {
		cfg.SASTTL = 7 * 24 * time.Hour
	}
	cfg.BlobURL = strings.TrimSuffix(cfg.BlobURL, "/") + "/"
	a := &Account{cfg: cfg}
	var err error
	if a.cred, err = azblob.NewSharedKeyCredential(cfg.Account, cfg.Key); err != nil {
		return nil, fmt.Errorf("storage credential for %s: %w", cfg.Account, err)
	}
	traced := func(service string) policy.ClientOptions {
		return policy.ClientOptions{PerRetryPolicies: []policy.Policy{TracePolicy(service)}}
	}
	if a.blob, err = azblob.NewClientWithSharedKeyCredential(cfg.BlobURL, a.cred, &azblob.ClientOptions{ClientOptions: traced("blob")}); err != nil {
		return nil, fmt.Errorf("blob client: %w", err)
	}
	if cfg.QueueURL != "" {
		cfg.QueueURL = strings.TrimSuffix(cfg.QueueURL, "/") + "/"
		a.cfg.QueueURL = cfg.QueueURL
		if a.qcred, err = azqueue.NewSharedKeyCredential(cfg.Account, cfg.Key); err != nil {
			return nil, fmt.Errorf("queue credential: %w", err)
		}
		if a.queue, err = azqueue.NewServiceClientWithSharedKeyCredential(cfg.QueueURL, a.qcred, &azqueue.ClientOptions{ClientOptions: traced("queue")}); err != nil {
			return nil, fmt.Errorf("queue client: %w", err)
		}
	}
	return a, nil
}

// Config returns the account's configuration (the key included: do not log it).
func (a *Account) Config() Config { return a.cfg }

// Blob returns the shared-key blob service client.
func (a *Account) Blob() *azblob.Client { return a.blob }

// QueueClient returns a shared-key client for a queue of the account.
func (a *Account) QueueClient(name string) (*azqueue.QueueClient, error) {
	if a.queue == nil {
		return nil, fmt.Errorf("%w: no -storage-queue-url", ErrNotConfigured)
	}
	return a.queue.NewQueueClient(name), nil
}

// protocol allows http only when the endpoint is http (Azurite on loopback).
func protocol(endpoint string) (sas.Protocol, qsas.Protocol) {
	if strings.HasPrefix(endpoint, "http://") {
		return sas.ProtocolHTTPSandHTTP, qsas.ProtocolHTTPSandHTTP
	}
	return sas.ProtocolHTTPS, qsas.ProtocolHTTPS
}

// EnsureContainer creates a container if it does not exist.
func (a *Account) EnsureContainer(ctx context.Context, name string) error {
	a.mu.Lock()
	at, ok := a.ensured[name]
	a.mu.Unlock()
	if ok && time.Since(at) < ensuredFor {
		return nil
	}
	if _, err := a.blob.CreateContainer(ctx, name, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	a.mu.Lock()
	if a.ensured == nil {
		a.ensured = map[string]time.Time{}
	}
	a.ensured[name] = time.Now()
	a.mu.Unlock()
	return nil
}

// EnsureQueue creates a queue if it does not exist.
func (a *Account) EnsureQueue(ctx context.Context, name string) error {
	if a.queue == nil {
		return fmt.Errorf("%w: no -storage-queue-url", ErrNotConfigured)
	}
	if _, err := a.queue.CreateQueue(ctx, name, nil); err != nil {
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.ErrorCode != "QueueAlreadyExists" {
			return fmt.Errorf("create queue %s: %w", name, err)
		}
	}
	return nil
}

// ContainerSAS creates the container if needed and returns a container SAS URL with perms, valid for
// ttl (0: the configured SAS TTL).
func (a *Account) ContainerSAS(ctx context.Context, name string, perms sas.ContainerPermissions, ttl time.Duration) (string, error) {
	if err := a.EnsureContainer(ctx, name); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = a.cfg.SASTTL
	}
	proto, _ := protocol(a.cfg.BlobURL)
	q, err := sas.BlobSignatureValues{
		Protocol:      proto,
		ExpiryTime:    time.Now().UTC().Add(ttl),
		ContainerName: name,
		Permissions:   perms.String(),
	}.SignWithSharedKey(a.cred)
	if err != nil {
		return "", fmt.Errorf("sign container SAS for %s: %w", name, err)
	}
	return a.cfg.BlobURL + name + "?" + q.Encode(), nil
}

// ManifestSAS is the SAS SharePoint requires for a manifest container: Read and Write only.
func (a *Account) ManifestSAS(ctx context.Context, container string) (string, error) {
	return a.ContainerSAS(ctx, container, sas.ContainerPermissions{Read: true, Write: true}, 0)
}

// QueueSAS creates the queue if needed and returns a queue SAS URL with perms. It signs the SAS
// itself because azqueue's GetSASURL forces https, which Azurite on loopback cannot serve.
func (a *Account) QueueSAS(ctx context.Context, name string, perms qsas.QueuePermissions, ttl time.Duration) (string, error) {
	if err := a.EnsureQueue(ctx, name); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = a.cfg.SASTTL
	}
	_, proto := protocol(a.cfg.QueueURL)
	q, err := qsas.QueueSignatureValues{
		Protocol:    proto,
		ExpiryTime:  time.Now().UTC().Add(ttl),
		QueueName:   name,
		Permissions: perms.String(),
	}.SignWithSharedKey(a.qcred)
	if err != nil {
		return "", fmt.Errorf("sign queue SAS for %s: %w", name, err)
	}
	return a.cfg.QueueURL + name + "?" + q.Encode(), nil
}

// ReportQueueSAS is the SAS SharePoint needs to post events: Add.
func (a *Account) ReportQueueSAS(ctx context.Context, queue string) (string, error) {
	return a.QueueSAS(ctx, queue, qsas.QueuePermissions{Add: true}, 0)
}
