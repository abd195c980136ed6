package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/testenv"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"
)

func TestStartSASRoundTripAndClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sasURL, err := srv.ContainerSAS(ctx, "manifests", sas.ContainerPermissions{Read: true, Write: true}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sasURL, "sp=rw") {
		t.Fatalf("container SAS lacks sp=rw: %s", sasURL)
	}
	cc, err := container.NewClientWithNoCredential(sasURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("job/Manifest.xml").UploadBuffer(ctx, []byte("<x/>"), nil); err != nil {
		t.Fatalf("upload through R+W SAS: %v", err)
	}
	qURL, err := srv.QueueSAS(ctx, "events", qsas.QueuePermissions{Add: true}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	qc, err := azqueue.NewQueueClientWithNoCredential(qURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qc.EnqueueMessage(ctx, "aGVsbG8=", nil); err != nil {
		t.Fatalf("enqueue through Add SAS over http: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.NewBlockBlobClient("job/Manifest1.xml").UploadBuffer(ctx, []byte("<x/>"), nil); err == nil {
		t.Fatal("upload succeeded after Close: azurite still running")
	}
}
