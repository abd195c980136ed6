package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
	"github.com/amrpipe/amrpipe/pkg/testenv"
)

func TestSASURLsMeetSharePointsRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, acct := startAzurite(t, ctx)
	m, err := acct.ManifestSAS(ctx, "amr-manifests")
	if err != nil {
		t.Fatal(err)
	}
	if err := sas.CheckManifestContainer(m); err != nil {
		t.Fatalf("manifest SAS refused by SharePoint's rule: %v", err)
	}
	q, err := acct.ReportQueueSAS(ctx, "amr-reports")
	if err != nil {
		t.Fatal(err)
	}
	if err := sas.CheckQueue(q); err != nil {
		t.Fatalf("queue SAS refused by SharePoint's rule: %v", err)
	}
	if _, err := storage.Open(storage.Config{BlobURL: srv.BlobURL, Account: testenv.AzuriteAccount}); err == nil {
		t.Fatal("Open without a key succeeded")
	}
}

// startAzurite starts an Azurite for one test and opens its account.
func startAzurite(t *testing.T, ctx context.Context) (*testenv.Azurite, *storage.Account) {
	t.Helper()
	srv, err := testenv.StartAzurite(ctx, testenv.AzuriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	acct, err := srv.Account()
	if err != nil {
		t.Fatal(err)
	}
	return srv, acct
}
