package spo_test

import (
	"errors"
	"flag"
	"io"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

func TestConfigNewClient(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr error
	}{
		{name: "no credentials", wantErr: spo.ErrNoCredentials},
		{name: "static token from the environment", env: map[string]string{spo.TokenEnv: "t"}},
		{name: "missing certificate file", args: []string{"-sp-cert-file", "/nonexistent.pem", "-sp-tenant-id", "x", "-sp-client-id", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c spo.Config
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			c.LoadSecrets(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			_, err := c.NewClient(nil)
			switch {
			case tt.name == "missing certificate file":
				if err == nil {
					t.Fatal("client built from a missing certificate")
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
}
