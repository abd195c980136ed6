package spo

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

// MaxURLsPerJob is SharePoint's limit for CreateSPAsyncReadJobWithMultiUrl.
const MaxURLsPerJob = 5000

// KeySize is the AES-256 key length AMR takes.
const KeySize = 32

// ReadOptions are AMR's SP.AsyncReadOptions.
type ReadOptions struct {
	IncludeVersions              bool
	IncludeSecurity              bool
	IncludePermission            bool
	IncludeDirectDescendantsOnly bool
	IncludeExtendedMetadata      bool
	// StartChangeToken asks for changes since a previous job's CurrentChangeToken; empty reads
	// everything.
	StartChangeToken string
}

// ReadJobRequest describes one AMR job.
type ReadJobRequest struct {
	// URL is the absolute URL of the list, library or folder (CreateSPAsyncReadJob only).
	URL     string
	Options ReadOptions
	// EncryptionKey is the AES-256 key SharePoint encrypts the manifests and queue messages
	// with; nil (or empty) for none.
	EncryptionKey []byte
	// ManifestContainerURI is a container SAS URL with exactly Read and Write.
	ManifestContainerURI string
	// QueueURI is an optional queue SAS URL with Add.
	QueueURI string
}

// String describes the request without its key or SAS signatures.
func (r ReadJobRequest) String() string {
	return fmt.Sprintf("ReadJobRequest{URL:%s Options:%+v EncryptionKey:%s ManifestContainerURI:%s QueueURI:%s}",
		r.URL, r.Options, keyLabel(r.EncryptionKey), sas.Redact(r.ManifestContainerURI), sas.Redact(r.QueueURI))
}

// LogValue keeps the key and signatures out of structured logs.
func (r ReadJobRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", r.URL),
		slog.Bool("encrypted", len(r.EncryptionKey) > 0),
		slog.String("manifest_container", sas.Redact(r.ManifestContainerURI)),
		slog.String("queue", sas.Redact(r.QueueURI)),
		slog.String("start_change_token", r.Options.StartChangeToken),
	)
}

func keyLabel(k []byte) string {
	if len(k) == 0 {
		return "none"
	}
	return fmt.Sprintf("[%d bytes]", len(k))
}

// ReadJobInfo is SP.AsyncReadJobInfo: all SharePoint returns. It keeps no copy of the key.
type ReadJobInfo struct {
	JobID              string // lower-case GUID
	CurrentChangeToken string // pass as StartChangeToken next time
}

// wire shapes of the request (rest-surface.md §1).
type wireReadOptions struct {
	IncludeVersions              bool    `json:"IncludeVersions"`
	IncludeSecurity              bool    `json:"IncludeSecurity"`
	IncludePermission            bool    `json:"IncludePermission"`
	IncludeDirectDescendantsOnly bool    `json:"IncludeDirectDescendantsOnly"`
	IncludeExtendedMetadata      bool    `json:"IncludeExtendedMetadata"`
	StartChangeToken             *string `json:"StartChangeToken"`
}

type wireEncryption struct {
	AES256CBCKey string `json:"AES256CBCKey"`
}

type wireReadJob struct {
	URL                       string          `json:"url,omitempty"`
	URLs                      []string        `json:"urls,omitempty"`
	ReadOptions               wireReadOptions `json:"readOptions"`
	EncryptionOption          *wireEncryption `json:"encryptionOption"`
	AzureContainerManifestURI string          `json:"azureContainerManifestUri"`
	// Omitted without a queue: SharePoint binds a missing parameter to null, which is what
	// CSOM sends for "no queue".
	AzureQueueReportURI string `json:"azureQueueReportUri,omitempty"`
}

// CreateSPAsyncReadJob starts an AMR job for one URL under site. The request is checked first
// (URL under the site, key size, SAS permissions) so a bad one never reaches SharePoint.
func (c *Client) CreateSPAsyncReadJob(ctx context.Context, site string, req ReadJobRequest) (ReadJobInfo, error) {
	cl, err := newCall("CreateSPAsyncReadJob", "create read job", site)
	if err != nil {
		return ReadJobInfo{}, err
	}
	if err := checkTarget(site, req.URL); err != nil {
		return ReadJobInfo{}, cl.invalid("url: %v", err)
	}
	return c.createReadJob(ctx, cl, req, wireReadJob{URL: req.URL})
}

// CreateSPAsyncReadJobWithMultiUrl starts one AMR job for up to 5,000 lists, libraries or
// folders, which must all be under one web (SharePoint fails the job otherwise; the client
// cannot tell). req.URL must be empty.
func (c *Client) CreateSPAsyncReadJobWithMultiUrl(ctx context.Context, site string, urls []string, req ReadJobRequest) (ReadJobInfo, error) {
	cl, err := newCall("CreateSPAsyncReadJobWithMultiUrl", "create multi-URL read job", site)
	if err != nil {
		return ReadJobInfo{}, err
	}
	switch {
	case req.URL != "":
		return ReadJobInfo{}, cl.invalid("ReadJobRequest.URL is set; pass the URLs in urls")
	case len(urls) == 0:
		return ReadJobInfo{}, cl.invalid("no URLs")
	case len(urls) > MaxURLsPerJob:
		return ReadJobInfo{}, cl.invalid("%d URLs; SharePoint accepts at most %d per job", len(urls), MaxURLsPerJob)
	}
	for i, u := range urls {
		if err := checkTarget(site, u); err != nil {
			return ReadJobInfo{}, cl.invalid("urls[%d]: %v", i, err)
		}
	}
	return c.createReadJob(ctx, cl, req, wireReadJob{URLs: urls})
}

func (c *Client) createReadJob(ctx context.Context, cl *call, req ReadJobRequest, body wireReadJob) (ReadJobInfo, error) {
	if n := len(req.EncryptionKey); n != 0 && n != KeySize {
		return ReadJobInfo{}, cl.invalid("encryption key is %d bytes; AES-256 needs %d", n, KeySize)
	}
	// A SAS SharePoint would refuse is a request the client refuses to send.
	if err := sas.CheckManifestContainer(req.ManifestContainerURI); err != nil {
		return ReadJobInfo{}, cl.fail(refusal{err})
	}
	if req.QueueURI != "" {
		if err := sas.CheckQueue(req.QueueURI); err != nil {
			return ReadJobInfo{}, cl.fail(refusal{err})
		}
	}
	o := req.Options
	body.ReadOptions = wireReadOptions{
		IncludeVersions: o.IncludeVersions, IncludeSecurity: o.IncludeSecurity, IncludePermission: o.IncludePermission,
		IncludeDirectDescendantsOnly: o.IncludeDirectDescendantsOnly, IncludeExtendedMetadata: o.IncludeExtendedMetadata,
	}
	if o.StartChangeToken != "" {
		body.ReadOptions.StartChangeToken = &o.StartChangeToken
	}
	if len(req.EncryptionKey) > 0 {
		b64 := base64.StdEncoding.EncodeToString(req.EncryptionKey)
		body.EncryptionOption = &wireEncryption{AES256CBCKey: b64}
		cl.secrets = append(cl.secrets, b64, strings.TrimRight(b64, "="), url.QueryEscape(b64),
			base64.RawURLEncoding.EncodeToString(req.EncryptionKey), hex.EncodeToString(req.EncryptionKey))
	}
	body.AzureContainerManifestURI = req.ManifestContainerURI
	body.AzureQueueReportURI = req.QueueURI
	cl.secrets = append(cl.secrets, sas.Signatures(req.ManifestContainerURI)...)
	cl.secrets = append(cl.secrets, sas.Signatures(req.QueueURI)...)
	cl.verb, cl.url, cl.body = http.MethodPost, cl.site+"/_api/site/"+cl.method, body

	// The 2019 beta returned a collection of job infos; take the first if one comes back.
	var resp struct {
		JobID              string `json:"JobId"`
		CurrentChangeToken string `json:"CurrentChangeToken"`
	}
	var raw json.RawMessage
	if err := c.get(ctx, cl, &raw); err != nil {
		return ReadJobInfo{}, err
	}
	if err := decodeFirst(raw, cl.method, &resp); err != nil {
		return ReadJobInfo{}, cl.fail(err)
	}
	if !guidRE.MatchString(resp.JobID) {
		return ReadJobInfo{}, cl.fail(errors.New("response has no valid JobId"))
	}
	return ReadJobInfo{JobID: strings.ToLower(resp.JobID), CurrentChangeToken: resp.CurrentChangeToken}, nil
}

// decodeFirst decodes an object, or the first element of an array of objects.
func decodeFirst(raw json.RawMessage, method string, v any) error {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		if len(list) == 0 {
			return fmt.Errorf("decode %s response: empty collection", method)
		}
		raw = list[0]
	}
	return decodeInto(raw, method, v)
}

// checkTarget requires an absolute URL on the site's host, under the site's path.
func checkTarget(site, target string) error {
	if strings.TrimSpace(target) == "" {
		return errors.New("empty")
	}
	s, _ := url.Parse(site) // already validated
	t, err := url.Parse(target)
	if err != nil || !t.IsAbs() || t.Host == "" {
		return errors.New("not an absolute URL")
	}
	if !strings.EqualFold(t.Host, s.Host) {
		return fmt.Errorf("host %s is not the site's host %s", t.Host, s.Host)
	}
	sitePath := strings.ToLower(strings.TrimRight(s.Path, "/"))
	tPath := strings.ToLower(t.Path)
	if tPath != sitePath && !strings.HasPrefix(tPath, sitePath+"/") {
		return fmt.Errorf("%s is not under the site", t.Path)
	}
	return nil
}

// Containers is SP.ProvisionedMigrationContainersInfo: SharePoint-owned containers and a key.
// Both URIs carry SAS signatures; print it with %v (String redacts), never field by field.
type Containers struct {
	DataContainerURI     string
	MetadataContainerURI string
	EncryptionKey        []byte
}

// String describes the containers without signatures or key.
func (c Containers) String() string {
	return fmt.Sprintf("Containers{DataContainerURI:%s MetadataContainerURI:%s EncryptionKey:%s}",
		sas.Redact(c.DataContainerURI), sas.Redact(c.MetadataContainerURI), keyLabel(c.EncryptionKey))
}

// LogValue keeps the key and signatures out of structured logs.
func (c Containers) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("data_container", sas.Redact(c.DataContainerURI)),
		slog.String("metadata_container", sas.Redact(c.MetadataContainerURI)),
		slog.Bool("encrypted", len(c.EncryptionKey) > 0),
	)
}

// ProvisionMigrationContainers asks SharePoint for a pair of containers (Read+Write SAS) and a
// fresh AES-256 key. Each pair serves one job.
func (c *Client) ProvisionMigrationContainers(ctx context.Context, site string) (Containers, error) {
	cl, err := newCall("ProvisionMigrationContainers", "provision migration containers", site)
	if err != nil {
		return Containers{}, err
	}
	cl.verb, cl.url, cl.body = http.MethodPost, cl.site+"/_api/site/"+cl.method, struct{}{}
	var resp struct {
		DataContainerURI     string `json:"DataContainerUri"`
		MetadataContainerURI string `json:"MetadataContainerUri"`
		EncryptionKey        string `json:"EncryptionKey"`
	}
	if err := c.get(ctx, cl, &resp); err != nil {
		return Containers{}, err
	}
	key, err := base64.StdEncoding.DecodeString(resp.EncryptionKey)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(resp.EncryptionKey, "="))
	}
	switch {
	case err != nil:
		return Containers{}, cl.fail(errors.New("EncryptionKey is not base64"))
	case len(key) != KeySize:
		return Containers{}, cl.fail(fmt.Errorf("EncryptionKey is %d bytes, want %d", len(key), KeySize))
	case resp.DataContainerURI == "" || resp.MetadataContainerURI == "":
		return Containers{}, cl.fail(errors.New("response lacks a container URI"))
	}
	return Containers{DataContainerURI: resp.DataContainerURI, MetadataContainerURI: resp.MetadataContainerURI, EncryptionKey: key}, nil
}

// Progress is one page of SP.MigrationJobProgress.
type Progress struct {
	// Logs are the events in order, each the JSON text of one event object whose values are
	// all strings, kept as SharePoint sent it.
	Logs []string
	// NextToken is the cursor for the next call. With no new events SharePoint returns the same
	// token and no logs.
	NextToken string
}

// GetMigrationJobProgress returns the events after nextToken ("" means "0", the start). It sends
// Accept: application/json;odata=verbose, the header Microsoft documents as required for this
// call, and parses the nometadata shape too. Do not retry a 500 (pkg/stage.Verdict makes it
// permanent).
func (c *Client) GetMigrationJobProgress(ctx context.Context, site, jobID, nextToken string) (Progress, error) {
	cl, err := newCall("GetMigrationJobProgress", "get migration job progress", site)
	if err != nil {
		return Progress{}, err
	}
	id, err := normaliseGUID(jobID)
	if err != nil {
		return Progress{}, cl.invalid("job id: %v", err)
	}
	if nextToken == "" {
		nextToken = "0"
	}
	tok := odataString(nextToken)
	if isDigits(nextToken) {
		tok = nextToken // the documented form: nextToken=0
	}
	cl.verb, cl.accept = http.MethodGet, odataVerbose // the header the documentation requires
	cl.url = fmt.Sprintf("%s/_api/site/%s(jobId='%s',nextToken=%s)", cl.site, cl.method, id, tok)
	var resp struct {
		Logs      stringList  `json:"Logs"`
		NextToken *flexString `json:"NextToken"`
	}
	if err := c.get(ctx, cl, &resp); err != nil {
		return Progress{}, err
	}
	p := Progress{Logs: resp.Logs, NextToken: nextToken}
	if resp.NextToken != nil && *resp.NextToken != "" {
		p.NextToken = string(*resp.NextToken)
	}
	return p, nil
}

// JobState is SPMigrationJobState.
type JobState int

// Job states. None means unknown, or finished and removed.
const (
	JobNone       JobState = 0
	JobQueued     JobState = 2
	JobProcessing JobState = 4
)

// String returns None, Queued, Processing or JobState(n).
func (s JobState) String() string {
	switch s {
	case JobNone:
		return "None"
	case JobQueued:
		return "Queued"
	case JobProcessing:
		return "Processing"
	default:
		return "JobState(" + strconv.Itoa(int(s)) + ")"
	}
}

// UnmarshalJSON accepts the number, a numeric string or the state's name.
func (s *JobState) UnmarshalJSON(b []byte) error {
	var n int
	if json.Unmarshal(b, &n) == nil {
		*s = JobState(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return errors.New("job state is neither a number nor a string")
	}
	if n, err := strconv.Atoi(strings.TrimSpace(str)); err == nil {
		*s = JobState(n)
		return nil
	}
	for _, st := range []JobState{JobNone, JobQueued, JobProcessing} {
		if strings.EqualFold(str, st.String()) {
			*s = st
			return nil
		}
	}
	return errors.New("unknown job state name")
}

type wireJobID struct {
	ID string `json:"id"`
}

// GetMigrationJobStatus returns the job's state. SharePoint plans to retire it in H2 2026;
// GetMigrationJobProgress is the primary signal.
func (c *Client) GetMigrationJobStatus(ctx context.Context, site, jobID string) (JobState, error) {
	var st JobState
	err := c.jobAction(ctx, "GetMigrationJobStatus", "get migration job status", site, jobID, &st)
	return st, err
}

// DeleteMigrationJob deletes a job, the closest SharePoint has to cancelling one. Whether it
// stops an AMR job is undocumented.
func (c *Client) DeleteMigrationJob(ctx context.Context, site, jobID string) (bool, error) {
	var ok bool
	err := c.jobAction(ctx, "DeleteMigrationJob", "delete migration job", site, jobID, &ok)
	return ok, err
}

// jobAction POSTs {"id":jobID} to a job method and decodes its scalar result into v.
func (c *Client) jobAction(ctx context.Context, method, op, site, jobID string, v any) error {
	cl, err := newCall(method, op, site)
	if err != nil {
		return err
	}
	id, err := normaliseGUID(jobID)
	if err != nil {
		return cl.invalid("job id: %v", err)
	}
	cl.verb, cl.url, cl.body = http.MethodPost, cl.site+"/_api/site/"+method, wireJobID{ID: id}
	return c.get(ctx, cl, v)
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// normaliseGUID accepts a GUID with or without braces and returns it lower-case; anything else
// is refused, since it ends up inside a URL.
func normaliseGUID(s string) (string, error) {
	g := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if !guidRE.MatchString(g) {
		return "", errors.New("not a GUID")
	}
	return strings.ToLower(g), nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
