package aescbc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Errors of IVFromMetadata.
var (
	ErrNoIV  = errors.New("aescbc: blob metadata has no IV")
	ErrBadIV = errors.New("aescbc: blob metadata IV is not base64 of 16 bytes")
)

// IVFromMetadata returns the IV SharePoint stores in a blob's metadata under
// the key "IV". The key is matched case-insensitively because the Go SDK
// canonicalises it ("Iv" from GetProperties/DownloadStream, "iv" from
// listings). The value is standard base64, padding optional.
func IVFromMetadata(md map[string]*string) ([]byte, error) {
	var value *string
	for k, v := range md {
		if !strings.EqualFold(k, "iv") || v == nil {
			continue
		}
		if value != nil && *value != *v {
			return nil, fmt.Errorf("%w: several IV keys with different values", ErrBadIV)
		}
		value = v
	}
	if value == nil {
		return nil, ErrNoIV
	}
	s := strings.TrimRight(strings.TrimSpace(*value), "=")
	iv, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadIV, err)
	}
	if len(iv) != blockSize {
		return nil, fmt.Errorf("%w: decodes to %d bytes", ErrBadIV, len(iv))
	}
	return iv, nil
}
