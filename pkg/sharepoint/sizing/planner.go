package sizing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// Defaults from SharePoint's AMR guidance (docs/amr-protocol.md §6).
const (
	DefaultSmall       int64 = 10_000
	DefaultLarge       int64 = 1_000_000
	DefaultTokenMaxAge       = 60 * 24 * time.Hour
)

// Config holds the thresholds. Zero fields take the defaults.
type Config struct {
	// Small: nodes with fewer items go into multi-URL batches. Default 10,000.
	Small int64
	// Large: nodes with more items are probed. Default 1,000,000.
	Large int64
	// MaxURLsPerJob caps a multi-URL batch. Default and maximum spo.MaxURLsPerJob (5,000).
	MaxURLsPerJob int
	// MaxItemsPerBatch caps the summed Items+1 of a batch. Default Large.
	MaxItemsPerBatch int64
	// IncrementalMaxItems: an incremental plan reads lists bigger than this in full rather than
	// risk SharePoint cancelling the change-token job after 10 minutes. 0: no limit.
	IncrementalMaxItems int64
	// TokenMaxAge: older change tokens are not used. Default 60 days.
	TokenMaxAge time.Duration
	// ListLargeFolders splits large folders through Sizer.Children instead of probe jobs.
	ListLargeFolders bool
	// Now is the clock for token ages. Default time.Now.
	Now func() time.Time
	// Logger records why a list is not read incrementally. Default: discard.
	Logger *slog.Logger
}

// Kind says what a Node is.
type Kind int

// Node kinds. AMR reads lists, libraries and folders only.
const (
	KindFolder Kind = iota + 1
	KindList        // the root of a list or document library
)

// UnknownItems is Node.Items when the totals are unknown.
const UnknownItems int64 = -1

// Node is a list root or folder with its size.
type Node struct {
	URL     string // absolute, without a trailing slash
	WebURL  string // absolute URL of the web (site or subsite) holding it
	ListID  string
	ListURL string // absolute URL of the list root; equal to URL for KindList
	Kind    Kind
	// Items is the node's size: the number of files below it at any depth (SMTotalFileCount, or
	// StorageMetrics.TotalFileCount), a list root's ItemCount, or UnknownItems. See the package
	// documentation.
	Items int64
	// ChangeToken is the current change token of the node's list as the Sizer read it
	// (SP.List.CurrentChangeToken), and TokenRead when; empty when SharePoint gave none.
	ChangeToken string
	TokenRead   time.Time
}

// ListToken is a list's change token read while planning: a job reading the list's root carries
// it, so that the list gets a token when the job completes although the job's own
// CurrentChangeToken (one per job) cannot be the token of every list of a multi-URL job.
type ListToken struct {
	ListID string
	Token  string
	Read   time.Time
	// Scope is the folder target (a URL) the token is for, when the job reads a folder rather
	// than the list's root; empty for the whole list.
	Scope string `json:",omitempty"`
}

// ScopeKey is how a folder target's URL keys Request.ScopeTokens: lower case, no trailing slash.
func ScopeKey(url string) string { return strings.ToLower(strings.TrimRight(url, "/")) }

// Sizer looks up nodes. The planner service implements it over pkg/spo's folder calls; tests
// use a fake tree.
type Sizer interface {
	// Resolve returns the node at an absolute URL.
	Resolve(ctx context.Context, url string) (Node, error)
	// Children returns the direct subfolders of the node at url with their totals. Used only
	// with Config.ListLargeFolders.
	Children(ctx context.Context, url string) ([]Node, error)
}

// SubfolderSizer is a Sizer that can size a folder's direct subfolders in one request.
// Continue uses it, when a probe left more than one subfolder's size unknown, before resolving
// them one by one.
type SubfolderSizer interface {
	Sizer
	// SizeSubfolders returns the sizes (Node.Items) of the direct subfolders of the folder at url
	// that it learnt at once, keyed by ScopeKey of their URLs; a subfolder left out is resolved.
	SizeSubfolders(ctx context.Context, url string) (map[string]int64, error)
}

// StoredToken is a list's change token from a previous pass.
type StoredToken struct {
	Token    string
	IssuedAt time.Time // when the job that returned it was created
}

// Request is one job plan.
type Request struct {
	PlanID  string
	SiteURL string // the site collection; every target is under it
	// Targets are absolute URLs of lists, libraries or folders.
	Targets []string
	// Options: IncludeVersions, IncludePermission, IncludeExtendedMetadata and IncludeSecurity
	// as the plan asks; IncludeDirectDescendantsOnly and StartChangeToken are the planner's and
	// must be unset.
	Options spo.ReadOptions
	// Incremental: use ChangeTokens and keep list roots read in full out of batches so their
	// tokens can be stored.
	Incremental bool
	// ChangeTokens by list id.
	ChangeTokens map[string]StoredToken
	// ScopeTokens are tokens stored for folder targets (a previous pass read the folder, not its
	// whole list), by ScopeKey of the folder's URL. A list's own token comes first.
	ScopeTokens map[string]StoredToken
	// TokenRejected lists (by id) whose token SharePoint rejected with -2146232832.
	TokenRejected map[string]bool
}

// Emit tells the parser which objects of a job's output to publish.
type Emit int

// Emit policies; see the package documentation.
const (
	EmitAll          Emit = iota + 1 // every object
	EmitProbe                        // all but folders other than the job's URL
	EmitSecurityOnly                 // users, groups and role definitions only
)

var emitNames = map[Emit]string{EmitAll: "all", EmitProbe: "probe", EmitSecurityOnly: "security-only"}

// String names the policy.
func (e Emit) String() string {
	if s, ok := emitNames[e]; ok {
		return s
	}
	return fmt.Sprintf("Emit(%d)", int(e))
}

// MarshalText writes the policy's name, so stored specs read well.
func (e Emit) MarshalText() ([]byte, error) {
	if _, ok := emitNames[e]; !ok {
		return nil, fmt.Errorf("marshal %s: unknown emit policy", e)
	}
	return []byte(e.String()), nil
}

// UnmarshalText reads a name written by MarshalText.
func (e *Emit) UnmarshalText(b []byte) error {
	for k, v := range emitNames {
		if v == string(b) {
			*e = k
			return nil
		}
	}
	return fmt.Errorf("unknown emit policy %q", b)
}

// JobSpec is one AMR job to submit.
type JobSpec struct {
	ID      string // stable: a hash of the plan id and the job's content
	PlanID  string
	SiteURL string // the site collection whose /_api/site the job is created on
	WebURL  string // the web all URLs are under
	URLs    []string
	// Multi: submit with CreateSPAsyncReadJobWithMultiUrl (more than one URL).
	Multi   bool
	Options spo.ReadOptions
	Emit    Emit
	// EmitPrincipals: publish the users, groups and role definitions the job lists. False when
	// the plan has a security job that publishes them all.
	EmitPrincipals bool
	// Probe: the job's parsed output must come back to Continue as a ProbeResult.
	Probe bool
	// ParentJobID is the probe whose result produced this job, if any.
	ParentJobID string
	// ListIDs are the lists the job reads content of, sorted.
	ListIDs []string
	// TokenListID: the job's URL is this list's root, so its CurrentChangeToken is the list's.
	TokenListID string
	// Scope, when set, restricts what the parser publishes to objects under these URLs (an
	// incremental job reads a whole list for folder targets).
	Scope []string
	// ListTokens are the change tokens of the lists whose root is one of URLs, as read while
	// planning (before any job of the plan exists); see the package documentation.
	ListTokens []ListToken `json:",omitempty"`
	// Items estimates the objects the job returns; -1 when unknown (probes).
	Items int64
}

// ProbeResult is a probe job's parsed output: the probed node's direct subfolders.
type ProbeResult struct {
	Job JobSpec
	// Subfolders with URL and Items (the files below each, SMTotalFileCount, or UnknownItems, in
	// which case Continue asks the Sizer). WebURL and ListID may be left empty.
	Subfolders []Node
}

// Planner applies the rules. It is safe for concurrent use.
type Planner struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Planner, error) {
	if cfg.Small == 0 {
		cfg.Small = DefaultSmall
	}
	if cfg.Large == 0 {
		cfg.Large = DefaultLarge
	}
	if cfg.MaxURLsPerJob == 0 {
		cfg.MaxURLsPerJob = spo.MaxURLsPerJob
	}
	if cfg.MaxItemsPerBatch == 0 {
		cfg.MaxItemsPerBatch = cfg.Large
	}
	if cfg.TokenMaxAge == 0 {
		cfg.TokenMaxAge = DefaultTokenMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Small < 1:
		return nil, fmt.Errorf("planner config: Small %d must be positive", cfg.Small)
	case cfg.Large < cfg.Small:
		return nil, fmt.Errorf("planner config: Large %d is below Small %d", cfg.Large, cfg.Small)
	case cfg.MaxURLsPerJob < 1 || cfg.MaxURLsPerJob > spo.MaxURLsPerJob:
		return nil, fmt.Errorf("planner config: MaxURLsPerJob %d not in 1..%d", cfg.MaxURLsPerJob, spo.MaxURLsPerJob)
	case cfg.MaxItemsPerBatch < 1:
		return nil, fmt.Errorf("planner config: MaxItemsPerBatch %d must be positive", cfg.MaxItemsPerBatch)
	case cfg.IncrementalMaxItems < 0:
		return nil, fmt.Errorf("planner config: IncrementalMaxItems %d is negative", cfg.IncrementalMaxItems)
	case cfg.TokenMaxAge < 0:
		return nil, fmt.Errorf("planner config: TokenMaxAge %s is negative", cfg.TokenMaxAge)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Planner{cfg: cfg, log: log}, nil
}

// errNoSizer is returned when a rule needs the Sizer and none was given.
var errNoSizer = errors.New("planner: a Sizer is required")
