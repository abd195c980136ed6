// Package preflight checks, before a first export, what the pipeline will need: SharePoint
// credentials and permissions, the storage account and the SAS URLs the submitter mints, NATS
// and the topology, the key-encryption key, and the clocks. Each check says what is wrong and
// exactly how to fix it (docs/amrctl.md, "preflight").
package preflight

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/amrpipe/amrpipe/pkg/crypto/keywrap"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/importcheck"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// Status is a check's verdict, the same three as an import package's rules: a failed check stops
// a first export; a warning is worth a look.
type Status = importcheck.Status

// Verdicts.
const (
	Pass = importcheck.Pass
	Warn = importcheck.Warn
	Fail = importcheck.Fail
)

// Result is one check: what was checked, the verdict, what was found and how to fix it.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Failed counts the failed results.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

// Config is what the submitter would use. Its fields are read with the submitter's own flags
// and environment (spo.Config, storage.Config), so a preflight checks the same values.
type Config struct {
	// Site is a site collection the first export reads.
	Site       string
	SharePoint spo.Config
	Storage    storage.Config
	// JS is the pipeline's JetStream; nil when NATS could not be reached (ConnectErr says why).
	JS         jetstream.JetStream
	ConnectErr error
	// Encrypt is the submitter's -encrypt; KEK is keywrap.FromEnv's answer.
	Encrypt bool
	KEK     *keywrap.KEK
	KEKErr  error
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	Log *slog.Logger
}

// Run makes every check, in the order a user would fix them.
func Run(ctx context.Context, c Config) []Result {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	var out []Result
	out = append(out, sharePoint(ctx, c)...)
	out = append(out, storageChecks(ctx, c)...)
	out = append(out, natsChecks(ctx, c)...)
	out = append(out, kekCheck(c))
	return out
}

func sharePoint(ctx context.Context, c Config) []Result {
	u, err := url.Parse(c.Site)
	if c.Site == "" || err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return []Result{{Check: "sharepoint site", Status: Fail, Detail: fmt.Sprintf("--site %q is not an absolute https URL", c.Site),
			Fix: "pass --site https://<tenant>.sharepoint.com/sites/<site>, a site collection the export reads"}}
	}
	ts, err := c.SharePoint.TokenSource()
	if err != nil {
		return []Result{{Check: "sharepoint credentials", Status: Fail, Detail: err.Error(),
			Fix: "set --sp-tenant-id, --sp-client-id and --sp-cert-file (certificate password in " + spo.CertPasswordEnv + "), as for the submitter; " + spo.TokenEnv + " only for the simulator"}}
	}
	tok, err := ts.Token(ctx, u.Hostname())
	if err != nil {
		return []Result{{Check: "sharepoint credentials", Status: Fail, Detail: "no token for " + u.Hostname() + ": " + sas.Redact(err.Error()),
			Fix: "check the tenant id, the app (client) id, and that the certificate's public key is uploaded to the app registration (Entra ID > App registrations > Certificates & secrets)"}}
	}
	out := []Result{{Check: "sharepoint credentials", Status: Pass, Detail: "got a token for " + u.Hostname()}}
	out = append(out, CheckToken(tok, u.Hostname(), c.Now())...)
	client, err := c.SharePoint.NewClient(nil)
	if err != nil {
		return append(out, Result{Check: "sharepoint call", Status: Fail, Detail: err.Error()})
	}
	out = append(out, Access(ctx, client, c.Site))
	return append(out, ClockSkew(ctx, "sharepoint clock", c.Site, c.Now))
}

// Access makes one real call (the site's web) to prove the token works, and says which
// permission or consent is missing when SharePoint refuses it.
func Access(ctx context.Context, client *spo.Client, site string) Result {
	const check = "sharepoint call"
	w, err := client.Web(ctx, site)
	var te *spo.TokenError
	switch {
	case err == nil:
		return Result{Check: check, Status: Pass, Detail: fmt.Sprintf("read the web %q at %s", w.Title, site)}
	case errors.Is(err, spo.ErrUnauthorized):
		return Result{Check: check, Status: Fail, Detail: "SharePoint answered 401: it does not accept the token",
			Fix: "request the token for https://<tenant>.sharepoint.com/.default with a certificate (SharePoint refuses app-only tokens got with a client secret), and check the tenant id"}
	case errors.Is(err, spo.ErrAccessDenied):
		return Result{Check: check, Status: Fail, Detail: "SharePoint answered 403: the app may not read " + site,
			Fix: "in Entra ID > App registrations > API permissions, add SharePoint > Application permissions > Sites.Read.All (Sites.FullControl.All to create AMR jobs safely, docs/amr-protocol.md §1.6) and click Grant admin consent"}
	case errors.As(err, &te):
		return Result{Check: check, Status: Fail, Detail: sas.Redact(err.Error()), Fix: "see the credentials check above"}
	default:
		return Result{Check: check, Status: Fail, Detail: sas.Redact(err.Error()),
			Fix: "check that " + site + " is reachable from here (proxy, DNS, firewall) and is a site collection URL"}
	}
}

func storageChecks(ctx context.Context, c Config) []Result {
	acct, err := storage.Open(c.Storage)
	if err != nil {
		return []Result{{Check: "storage account", Status: Fail, Detail: err.Error(),
			Fix: "set --storage-blob-url, --storage-account and " + storage.KeyEnv + " (or " + storage.KeyEnv + "_FILE), as for the submitter"}}
	}
	out := []Result{manifestSAS(ctx, acct, c.Storage.Container)}
	if c.Storage.Queue != "" {
		out = append(out, queueSAS(ctx, acct, c.Storage.Queue))
	}
	return append(out, ClockSkew(ctx, "storage clock", c.Storage.BlobURL, c.Now))
}

// manifestSAS creates (or finds) the manifest container and mints its SAS as the submitter
// does, then applies SharePoint's rules to it.
func manifestSAS(ctx context.Context, acct *storage.Account, container string) Result {
	const check = "manifest container"
	u, err := acct.ManifestSAS(ctx, container)
	if err != nil {
		return Result{Check: check, Status: Fail, Detail: "storage unreachable or the key refused: " + sas.Redact(err.Error()),
			Fix: "check --storage-blob-url and " + storage.KeyEnv + " (Azure portal > storage account > Access keys), and that this host may reach the account (firewall, private endpoint)"}
	}
	if err := sas.CheckManifestContainer(u); err != nil {
		return Result{Check: check, Status: Fail, Detail: sas.Redact(err.Error()), Fix: "use a --sas-ttl of at least a day; the submitter signs Read+Write only"}
	}
	return Result{Check: check, Status: Pass, Detail: container + " exists; its SAS (Read+Write, not expired) follows SharePoint's rules"}
}

func queueSAS(ctx context.Context, acct *storage.Account, queue string) Result {
	const check = "report queue"
	u, err := acct.ReportQueueSAS(ctx, queue)
	if err != nil {
		return Result{Check: check, Status: Fail, Detail: "queue unreachable: " + sas.Redact(err.Error()),
			Fix: "check --storage-queue-url, or leave --report-queue empty to follow jobs through the progress API only"}
	}
	if err := sas.CheckQueue(u); err != nil {
		return Result{Check: check, Status: Fail, Detail: sas.Redact(err.Error())}
	}
	return Result{Check: check, Status: Pass, Detail: queue + " exists; its SAS (Add) follows SharePoint's rules"}
}

func natsChecks(ctx context.Context, c Config) []Result {
	if c.JS == nil {
		detail := "not connected"
		if c.ConnectErr != nil {
			detail = sas.Redact(c.ConnectErr.Error())
		}
		return []Result{{Check: "nats", Status: Fail, Detail: detail,
			Fix: "check --nats-url (or AMR_NATS_URL), --nats-user and AMR_NATS_PASSWORD, and that NATS runs with JetStream on"}}
	}
	out := []Result{{Check: "nats", Status: Pass, Detail: "connected"}}
	if err := topology.Verify(ctx, c.JS, topology.Options{}); err != nil {
		return append(out, Result{Check: "topology", Status: Fail, Detail: err.Error(), Fix: "run `amrctl topology apply` once (or start one service with -apply-topology)"})
	}
	return append(out, Result{Check: "topology", Status: Pass, Detail: "every stream, bucket and consumer is there as the services expect"})
}

// kekCheck never prints the key; its id is a name, not a secret.
func kekCheck(c Config) Result {
	const check = "key-encryption key"
	switch {
	case c.KEKErr != nil && !errors.Is(c.KEKErr, keywrap.ErrNoKEK):
		return Result{Check: check, Status: Fail, Detail: c.KEKErr.Error(), Fix: "set " + keywrap.EnvKEK + " to 32 random bytes in base64: openssl rand -base64 32"}
	case !c.Encrypt:
		return Result{Check: check, Status: Warn, Detail: "encryption is off (--encrypt=false): SharePoint writes manifests and queue messages in clear"}
	case c.KEK == nil:
		return Result{Check: check, Status: Fail, Detail: "encryption is on but " + keywrap.EnvKEK + " is not set",
			Fix: "set " + keywrap.EnvKEK + " (or " + keywrap.EnvKEK + "_FILE) to 32 random bytes in base64, the same for every submitter and decryptor: openssl rand -base64 32"}
	default:
		return Result{Check: check, Status: Pass, Detail: "present and 32 bytes (id " + c.KEK.ID() + ")"}
	}
}
