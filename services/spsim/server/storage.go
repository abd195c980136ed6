package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

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
func provision(ctx context.Context, acct *storage.Account, id string) (data, meta string, err error) {
	if data, err = acct.ManifestSAS(ctx, "spsim-data-"+id); err != nil {
		return "", "", redactErr(err)
	}
	if meta, err = acct.ManifestSAS(ctx, "spsim-meta-"+id); err != nil {
		return "", "", redactErr(err)
	}
	return data, meta, nil
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
	if clean := redact(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
