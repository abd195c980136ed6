package stage

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/throttle"
)

// Verdict is the one place where an error from outside the pipeline (SharePoint, Azure Storage,
// the throttling budget) becomes a verdict of the bus. Every stage consumes with it (Deps.Consume)
// and calls SharePoint through it (Call). In order:
//
//   - nil, and errors a stage marked with the bus's own wrappers (bus.Permanent, Throttled,
//     Later, Retryable), and context cancellation (retryable: a stopping service must not
//     dead-letter its work): as marked (bus.Own).
//   - a host paused for longer than the handler may wait (*throttle.LongPause): throttled for
//     the rest of the pause.
//   - SharePoint's answers (*spo.Error) by status: 429 and 503 throttled for their Retry-After;
//     408, 502 and 504 retryable; 500 permanent, because SharePoint documents that a 500 from
//     these APIs must not be retried (docs/amr-protocol.md); 401, 403 and every other status
//     permanent: the same call cannot succeed.
//   - the token endpoint: Entra ID refusing the credentials (a 4xx) permanent; anything else
//     about getting a token retryable.
//   - no answer at all (*spo.TransportError): retryable.
//   - a request the client refused to send (spo.ErrInvalidRequest: a bad URL, key or SAS):
//     permanent.
//   - Azure Storage (*azcore.ResponseError): 429 and 503 (ServerBusy) throttled; 400, 401 and 403
//     permanent (our request or credentials); anything else retryable.
//   - any other error: retryable. Unknown trouble is retried MaxFailures times with back-off
//     (pkg/bus) and then dead-lettered with its text, never lost and never retried forever.
func Verdict(err error) bus.Verdict {
	if v, ok := bus.Own(err); ok {
		return v
	}
	var lp *throttle.LongPause
	if errors.As(err, &lp) {
		return bus.Verdict{Class: bus.ClassThrottled, Delay: lp.Wait}
	}
	var se *spo.Error
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return bus.Verdict{Class: bus.ClassThrottled, Delay: se.RetryAfter}
		case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusGatewayTimeout:
			return bus.Verdict{Class: bus.ClassRetryable}
		}
		return permanent(err)
	}
	var te *spo.TokenError
	if errors.As(err, &te) {
		if te.Refused() {
			return permanent(err)
		}
		return bus.Verdict{Class: bus.ClassRetryable}
	}
	var tr *spo.TransportError
	if errors.As(err, &tr) {
		return bus.Verdict{Class: bus.ClassRetryable}
	}
	if errors.Is(err, spo.ErrInvalidRequest) {
		return permanent(err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return bus.Verdict{Class: bus.ClassThrottled}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
			return permanent(err)
		}
	}
	return bus.Verdict{Class: bus.ClassRetryable}
}

func permanent(err error) bus.Verdict {
	return bus.Verdict{Class: bus.ClassPermanent, Reason: err.Error()}
}

// Judge is Verdict for the in-call retries of Call (throttle.Policy.Judge). A cancelled context
// ends the call: its retries belong to the message's.
func Judge(err error) (throttle.Outcome, time.Duration) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return throttle.GiveUp, 0
	}
	switch v := Verdict(err); v.Class {
	case bus.ClassThrottled:
		return throttle.Throttled, v.Delay
	case bus.ClassRetryable:
		return throttle.Retry, 0
	}
	return throttle.GiveUp, 0
}
