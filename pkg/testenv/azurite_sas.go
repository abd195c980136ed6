package testenv

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/storage"
)

// StorageConfig is the storage configuration of the services for this Azurite.
func (s *Azurite) StorageConfig() storage.Config {
	return storage.Config{BlobURL: s.BlobURL, QueueURL: s.QueueURL, Account: AzuriteAccount, Key: AzuriteKey, Container: "amr-manifests"}
}

// Account opens the development account.
func (s *Azurite) Account() (*storage.Account, error) {
	return storage.Open(s.StorageConfig())
}

// ContainerSAS creates the container if needed and returns a container SAS URL with the given
// permissions, valid for ttl.
func (s *Azurite) ContainerSAS(ctx context.Context, name string, perms sas.ContainerPermissions, ttl time.Duration) (string, error) {
	a, err := s.Account()
	if err != nil {
		return "", err
	}
	return a.ContainerSAS(ctx, name, perms, ttl)
}

// QueueSAS creates the queue if needed and returns a queue SAS URL with the given permissions.
func (s *Azurite) QueueSAS(ctx context.Context, name string, perms qsas.QueuePermissions, ttl time.Duration) (string, error) {
	a, err := s.Account()
	if err != nil {
		return "", err
	}
	return a.QueueSAS(ctx, name, perms, ttl)
}
