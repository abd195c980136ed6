package flagenv_test

import (
	"flag"
	"io"
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
