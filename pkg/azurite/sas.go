package azurite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
	qsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2/sas"
)

// ContainerSAS creates the container if needed and returns a container SAS URL with the given
// permissions, valid for ttl. The SAS allows http, which Azurite on loopback needs.
func (s *Server) ContainerSAS(ctx context.Context, name string, perms sas.ContainerPermissions, ttl time.Duration) (string, error) {
	client, err := s.BlobClient()
	if err != nil {
		return "", err
	}
	if _, err := client.CreateContainer(ctx, name, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	cred, err := s.Credential()
	if err != nil {
		return "", err
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().UTC().Add(ttl),
		ContainerName: name,
		Permissions:   perms.String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sign container SAS: %w", err)
	}
	return s.BlobURL + name + "?" + q.Encode(), nil
}

// QueueSAS creates the queue if needed and returns a queue SAS URL with the given permissions,
// valid for ttl. It signs the SAS itself because azqueue's GetSASURL forces https.
func (s *Server) QueueSAS(ctx context.Context, name string, perms qsas.QueuePermissions, ttl time.Duration) (string, error) {
	svc, err := s.QueueClient()
	if err != nil {
		return "", err
	}
	if _, err := svc.CreateQueue(ctx, name, nil); err != nil {
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.ErrorCode != "QueueAlreadyExists" {
			return "", fmt.Errorf("create queue %s: %w", name, err)
		}
	}
	cred, err := azqueue.NewSharedKeyCredential(Account, Key)
	if err != nil {
		return "", err
	}
	q, err := qsas.QueueSignatureValues{
		Protocol:    qsas.ProtocolHTTPSandHTTP,
		ExpiryTime:  time.Now().UTC().Add(ttl),
		QueueName:   name,
		Permissions: perms.String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("sign queue SAS: %w", err)
	}
	return s.QueueURL + name + "?" + q.Encode(), nil
}
