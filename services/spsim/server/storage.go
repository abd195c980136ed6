package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/amrpipe/amrpipe/pkg/sas"
)

// StorageAccount is where ProvisionMigrationContainers creates containers (SharePoint uses its own
// Azure account; the simulator uses the one it is given, usually Azurite).
type StorageAccount struct {
	BlobURL string // e.g. http://127.0.0.1:10000/devstoreaccount1/
	Name    string
	Key     string
}

// blobSink uploads finished package files into the job's container through the SAS it was given,
// and announces each one with FinishManifestFileUpload once it is stored.
type blobSink struct {
	s  *Server
	j  *job
	cc *container.Client
}

func (s *Server) newBlobSink(j *job) (*blobSink, error) {
	cc, err := container.NewClientWithNoCredential(j.containerURL, &container.ClientOptions{})
	if err != nil {
		return nil, fmt.Errorf("container client: %w", redactErr(err))
	}
	return &blobSink{s: s, j: j, cc: cc}, nil
}

// Put implements export.Sink.
func (b *blobSink) Put(ctx context.Context, name string, data []byte, metadata map[string]*string) error {
	for _, f := range b.j.faults {
		switch f.Job {
		case "slow-upload":
			select {
			case <-time.After(f.Delay):
			case <-ctx.Done():
				return ctx.Err()
			}
		case "truncated-upload":
			// Cut inside the last cipher block so the damage is detectable, as a broken upload would be.
			if cut := len(data) - 7; cut > 0 && strings.Contains(name, "/Manifest") {
				data = data[:cut]
			}
		}
	}
	_, err := b.cc.NewBlockBlobClient(name).UploadBuffer(ctx, data, &azblob.UploadBufferOptions{
		Metadata:    metadata,
		BlockSize:   4 << 20,
		Concurrency: 4,
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, redactErr(err))
	}
	b.s.emit(ctx, b.j, "FinishManifestFileUpload", "ManifestFileName", name)
	return nil
}

// provision creates a data and a metadata container and returns Read+Write SAS URLs for them.
func (a *StorageAccount) provision(ctx context.Context, id string) (data, meta string, err error) {
	cred, err := azblob.NewSharedKeyCredential(a.Name, a.Key)
	if err != nil {
		return "", "", fmt.Errorf("storage credential: %w", err)
	}
	client, err := azblob.NewClientWithSharedKeyCredential(a.BlobURL, cred, nil)
	if err != nil {
		return "", "", fmt.Errorf("storage client: %w", err)
	}
	urls := make([]string, 2)
	for i, kind := range []string{"data", "meta"} {
		name := fmt.Sprintf("spsim-%s-%s", kind, id)
		if _, err := client.CreateContainer(ctx, name, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
			return "", "", fmt.Errorf("create container %s: %w", name, redactErr(err))
		}
		proto := azsas.ProtocolHTTPS
		if strings.HasPrefix(a.BlobURL, "http://") {
			proto = azsas.ProtocolHTTPSandHTTP
		}
		q, err := azsas.BlobSignatureValues{
			Protocol:      proto,
			ExpiryTime:    time.Now().UTC().Add(30 * 24 * time.Hour),
			ContainerName: name,
			Permissions:   (&azsas.ContainerPermissions{Read: true, Write: true}).String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			return "", "", fmt.Errorf("sign SAS for %s: %w", name, err)
		}
		urls[i] = strings.TrimSuffix(a.BlobURL, "/") + "/" + name + "?" + q.Encode()
	}
	return urls[0], urls[1], nil
}

func newKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// redactErr strips SAS signatures out of an error's text (Azure SDK errors quote request URLs).
func redactErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := sas.Redact(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
