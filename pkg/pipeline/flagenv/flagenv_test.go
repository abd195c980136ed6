package flagenv_test

import (
	"errors"
	"flag"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/amrpipe/amrpipe/pkg/pipeline/flagenv"
)

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantWait time.Duration
		wantErr  bool
	}{
		{name: "defaults", wantAddr: ":80", wantWait: time.Second},
		{name: "env fills unset flags", env: map[string]string{"SVC_LISTEN_ADDR": ":9", "SVC_WAIT": "3s"}, wantAddr: ":9", wantWait: 3 * time.Second},
		{name: "command line beats env", args: []string{"-listen-addr", ":7"}, env: map[string]string{"SVC_LISTEN_ADDR": ":9"}, wantAddr: ":7", wantWait: time.Second},
		{name: "bad env value is an error naming the variable", env: map[string]string{"SVC_WAIT": "soon"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("svc", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("listen-addr", ":80", "address")
			wait := fs.Duration("wait", time.Second, "wait")
			err := flagenv.Parse(fs, "svc", tt.args, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.wantAddr || *wait != tt.wantWait {
				t.Fatalf("got %q %v, want %q %v", *addr, *wait, tt.wantAddr, tt.wantWait)
			}
		})
	}
}

func TestWithFilesReadsTheFileANameFileVariableNames(t *testing.T) {
	files := map[string]string{"/run/secrets/kek": "c2VjcmV0\n", "/run/secrets/crlf": "pw\r\n", "/run/secrets/empty": ""}
	readFile := func(path string) ([]byte, error) {
		v, ok := files[path]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(v), nil
	}
	tests := []struct {
		name    string
		env     map[string]string
		key     string
		want    string
		wantOK  bool
		wantErr bool
	}{
		{name: "variable set", env: map[string]string{"AMR_KEK": "direct"}, key: "AMR_KEK", want: "direct", wantOK: true},
		{name: "variable beats its file", env: map[string]string{"AMR_KEK": "direct", "AMR_KEK_FILE": "/run/secrets/kek"}, key: "AMR_KEK", want: "direct", wantOK: true},
		{name: "file without its line break", env: map[string]string{"AMR_KEK_FILE": "/run/secrets/kek"}, key: "AMR_KEK", want: "c2VjcmV0", wantOK: true},
		{name: "file with a CRLF", env: map[string]string{"AMR_NATS_PASSWORD_FILE": "/run/secrets/crlf"}, key: "AMR_NATS_PASSWORD", want: "pw", wantOK: true},
		{name: "empty file is an empty value", env: map[string]string{"AMR_KEK_FILE": "/run/secrets/empty"}, key: "AMR_KEK", want: "", wantOK: true},
		{name: "neither set", env: map[string]string{}, key: "AMR_KEK"},
		{name: "empty file name is unset", env: map[string]string{"AMR_KEK_FILE": ""}, key: "AMR_KEK"},
		{name: "missing file is unset and reported", env: map[string]string{"AMR_KEK_FILE": "/run/secrets/none"}, key: "AMR_KEK", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reported error
			lookup := flagenv.WithFiles(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, readFile,
				func(_ string, err error) { reported = err })
			got, ok := lookup(tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("lookup(%s) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
			if (reported != nil) != tt.wantErr {
				t.Errorf("reported %v, want an error: %v", reported, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(reported, fs.ErrNotExist) {
				t.Errorf("reported %v, want it to wrap fs.ErrNotExist", reported)
			}
		})
	}
}
