package svc_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
)

type fakeProgram struct {
	parseErr, runErr, closeErr error
	closed                     bool
}

func (f *fakeProgram) ParseFlags([]string) error     { return f.parseErr }
func (f *fakeProgram) Run(ctx context.Context) error { return f.runErr }
func (f *fakeProgram) Close() error                  { f.closed = true; return f.closeErr }

func TestExecuteExitCodes(t *testing.T) {
	tests := []struct {
		name      string
		p         *fakeProgram
		code      int
		stderr    string
		wantClose bool
	}{
		{"help", &fakeProgram{parseErr: flag.ErrHelp}, 0, "", false},
		{"bad flags", &fakeProgram{parseErr: errors.New("bad -x")}, 2, "stage: bad -x", false},
		{"clean stop", &fakeProgram{runErr: context.Canceled}, 0, "", true},
		{"run fails", &fakeProgram{runErr: errors.New("boom")}, 1, "stage: boom", true},
		{"close fails", &fakeProgram{closeErr: errors.New("drain")}, 1, "stage: drain", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := svc.Execute("stage", tt.p, nil, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
			if tt.p.closed != tt.wantClose {
				t.Fatalf("closed %v, want %v", tt.p.closed, tt.wantClose)
			}
		})
	}
}
