package stage_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
	"github.com/amrpipe/amrpipe/pkg/stage"
)

// TestVerdict is the table of what an outside error means for a message (the package comment of
// Verdict says why for each row).
func TestVerdict(t *testing.T) {
	refused := &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: 401}}
	tests := []struct {
		name  string
		err   error
		class bus.Class
		delay time.Duration
	}{
		{"nil acks", nil, bus.ClassAck, 0},
		{"a stage's own permanent", &bus.Permanent{Reason: "spec names two webs"}, bus.ClassPermanent, 0},
		{"a stage's own retryable over a SharePoint 500", &bus.Retryable{Err: &spo.Error{Status: 500}}, bus.ClassRetryable, 0},
		{"cancelled: retry, never dead-letter", fmt.Errorf("poll: %w", context.Canceled), bus.ClassRetryable, 0},
		{"host paused longer than a handler waits", &throttle.LongPause{Host: "contoso.sharepoint.com", Wait: 40 * time.Second}, bus.ClassThrottled, 40 * time.Second},
		{"SharePoint 429 with Retry-After",
			fmt.Errorf("create job: %w", &spo.Error{Status: http.StatusTooManyRequests, RetryAfter: 3 * time.Second}), bus.ClassThrottled, 3 * time.Second},
		{"SharePoint 503", &spo.Error{Status: http.StatusServiceUnavailable}, bus.ClassThrottled, 0},
		{"SharePoint 500 is never retried", &spo.Error{Status: http.StatusInternalServerError, Code: spo.CodeJobNotFound}, bus.ClassPermanent, 0},
		{"SharePoint 502", &spo.Error{Status: http.StatusBadGateway}, bus.ClassRetryable, 0},
		{"SharePoint 504", &spo.Error{Status: http.StatusGatewayTimeout}, bus.ClassRetryable, 0},
		{"SharePoint 408", &spo.Error{Status: http.StatusRequestTimeout}, bus.ClassRetryable, 0},
		{"SharePoint 401", &spo.Error{Status: http.StatusUnauthorized}, bus.ClassPermanent, 0},
		{"SharePoint 403", &spo.Error{Status: http.StatusForbidden}, bus.ClassPermanent, 0},
		{"SharePoint 400", &spo.Error{Status: http.StatusBadRequest}, bus.ClassPermanent, 0},
		{"Entra ID refuses the credentials", &spo.TokenError{Host: "contoso.sharepoint.com", Err: refused}, bus.ClassPermanent, 0},
		{"token endpoint unreachable", &spo.TokenError{Host: "contoso.sharepoint.com", Err: errors.New("no such host")}, bus.ClassRetryable, 0},
		{"no answer from SharePoint", &spo.TransportError{Err: errors.New("connection reset")}, bus.ClassRetryable, 0},
		{"a request the client refuses to send", fmt.Errorf("create: %w", spo.ErrInvalidRequest), bus.ClassPermanent, 0},
		{"Azure Storage busy", &azcore.ResponseError{StatusCode: http.StatusServiceUnavailable, ErrorCode: "ServerBusy"}, bus.ClassThrottled, 0},
		{"Azure Storage 429", &azcore.ResponseError{StatusCode: http.StatusTooManyRequests}, bus.ClassThrottled, 0},
		{"Azure Storage refuses our credentials", &azcore.ResponseError{StatusCode: http.StatusForbidden, ErrorCode: "AuthorizationFailure"}, bus.ClassPermanent, 0},
		{"Azure Storage 500", &azcore.ResponseError{StatusCode: http.StatusInternalServerError, ErrorCode: "InternalError"}, bus.ClassRetryable, 0},
		{"unknown: retried, then dead-lettered", errors.New("nats: timeout"), bus.ClassRetryable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := stage.Verdict(tt.err)
			if v.Class != tt.class || v.Delay != tt.delay {
				t.Fatalf("Verdict(%v) = %v/%s, want %v/%s", tt.err, v.Class, v.Delay, tt.class, tt.delay)
			}
			if tt.class == bus.ClassPermanent && v.Reason == "" {
				t.Fatal("permanent verdict without a reason")
			}
		})
	}
}
