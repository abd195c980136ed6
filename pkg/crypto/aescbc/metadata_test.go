package aescbc_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

func TestIVFromMetadata(t *testing.T) {
	str := func(s string) *string { return &s }
	want := []byte("0123456789abcdef")
	const b64 = "MDEyMzQ1Njc4OWFiY2RlZg==" // base64 of want
	tests := []struct {
		name    string
		md      map[string]*string
		wantErr error
	}{
		{"IV as written by SharePoint", map[string]*string{"IV": str(b64)}, nil},
		{"Iv from GetProperties/DownloadStream", map[string]*string{"Iv": str(b64)}, nil},
		{"iv from listings", map[string]*string{"other": str("x"), "iv": str(b64)}, nil},
		{"padding missing", map[string]*string{"IV": str("MDEyMzQ1Njc4OWFiY2RlZg")}, nil},
		{"surrounding whitespace", map[string]*string{"IV": str(" " + b64 + "\n")}, nil},
		{"same value under two spellings", map[string]*string{"IV": str(b64), "iv": str(b64)}, nil},
		{"nil metadata", nil, aescbc.ErrNoIV},
		{"no IV key", map[string]*string{"ivy": str(b64)}, aescbc.ErrNoIV},
		{"nil value", map[string]*string{"IV": nil}, aescbc.ErrNoIV},
		{"not base64", map[string]*string{"IV": str("not*base64!")}, aescbc.ErrBadIV},
		{"hex, not base64", map[string]*string{"IV": str("30313233343536373839616263646566")}, aescbc.ErrBadIV},
		{"15 bytes", map[string]*string{"IV": str("MDEyMzQ1Njc4OWFiY2Rl")}, aescbc.ErrBadIV},
		{"empty", map[string]*string{"IV": str("")}, aescbc.ErrBadIV},
		{"conflicting spellings", map[string]*string{"IV": str(b64), "iv": str("AAAAAAAAAAAAAAAAAAAAAA==")}, aescbc.ErrBadIV},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iv, err := aescbc.IVFromMetadata(tt.md)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(iv, want) {
				t.Errorf("iv = %q, want %q", iv, want)
			}
		})
	}
}
