package bus

import (
	"context"
	"errors"
	"time"
)

// Retryable marks a failure that may pass on a later attempt. It counts toward the stage's
// failure limit. An error no wrapper marks is retryable too, unless the stage's Classify says otherwise.
type Retryable struct{ Err error }

func (e *Retryable) Error() string { return "retryable: " + errText(e.Err) }
func (e *Retryable) Unwrap() error { return e.Err }

// Throttled marks a failure because a service asked us to slow down: the message comes back
// after RetryAfter (the default delay when zero) and the attempt is not counted as a failure.
type Throttled struct {
	RetryAfter time.Duration
	Err        error
}

func (e *Throttled) Error() string { return "throttled: " + errText(e.Err) }
func (e *Throttled) Unwrap() error { return e.Err }

// Permanent marks a message that cannot succeed: it is terminated and dead-lettered with Reason.
type Permanent struct {
	Reason string
	Err    error
}

// Error is the reason (and the cause): it becomes the dead letter's reason as it is.
func (e *Permanent) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}
func (e *Permanent) Unwrap() error { return e.Err }

// Later is not a failure: the message is not finished and should come back after After (the
// parser waiting for a file decrypted again, the submitter for the job of an unknown create
// outcome).
type Later struct{ After time.Duration }

func (e *Later) Error() string { return "deliver again after " + e.After.String() }

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Class is what Consume does with a message after its handler returned.
type Class int

// Classes, in the order Consume checks them.
const (
	// ClassAck: the handler succeeded; the message is acknowledged.
	ClassAck Class = iota
	// ClassRetryable: Nak with back-off; counts toward the failure limit.
	ClassRetryable
	// ClassThrottled: Nak with the Retry-After delay; not counted.
	ClassThrottled
	// ClassLater: Nak with the requested delay; not a failure at all.
	ClassLater
	// ClassPermanent: Term and dead-letter.
	ClassPermanent
)

// String names the class (also the "outcome" label of the metrics).
func (c Class) String() string {
	switch c {
	case ClassAck:
		return "ack"
	case ClassRetryable:
		return "retryable"
	case ClassThrottled:
		return "throttled"
	case ClassLater:
		return "later"
	case ClassPermanent:
		return "permanent"
	default:
		return "unknown"
	}
}

// Verdict is the classification of a handler's error.
type Verdict struct {
	Class Class
	// Delay is the wait a Throttled or Later asked for (0: none given).
	Delay time.Duration
	// Reason is the dead-letter reason of a permanent failure.
	Reason string
	// Backpressure marks a throttled verdict because our own JetStream cannot take a write now:
	// a store is full (Full) or JetStream is unavailable (Unavailable). It is waited out however
	// long it lasts (no ThrottleBudget), with a delay growing with the message's deliveries,
	// since only readers making room, or the cluster electing a leader, can end it.
	Backpressure bool
}

// Classify reads the bus's own verdicts: the wrappers of this package win, in the order
// Permanent, a full store or an unavailable JetStream (Full, Unavailable: throttled,
// back-pressure), Throttled, Later, Retryable; context
// cancellation and any other error is retryable,
// so that unknown trouble is retried a bounded number of times and then dead-lettered rather
// than lost. It knows nothing of SharePoint or Azure: the stages translate those errors in one
// place (pkg/stage's Verdict) and hand that function to Consume as ConsumeOptions.Classify.
func Classify(err error) Verdict {
	if v, ok := Own(err); ok {
		return v
	}
	return Verdict{Class: ClassRetryable}
}

// Own returns the verdict of an error marked with one of this package's wrappers, of a nil error
// (ClassAck) and of JetStream refusing a write to a full store or being unavailable (Full,
// Unavailable: throttled, back-pressure), and false for any other error.
func Own(err error) (Verdict, bool) {
	if err == nil {
		return Verdict{Class: ClassAck}, true
	}
	var perm *Permanent
	if errors.As(err, &perm) {
		return Verdict{Class: ClassPermanent, Reason: err.Error()}, true
	}
	if Full(err) || Unavailable(err) { // before Retryable: a stage may have wrapped the refusal as one
		return Verdict{Class: ClassThrottled, Backpressure: true}, true
	}
	var thr *Throttled
	if errors.As(err, &thr) {
		return Verdict{Class: ClassThrottled, Delay: thr.RetryAfter}, true
	}
	var later *Later
	if errors.As(err, &later) {
		return Verdict{Class: ClassLater, Delay: later.After}, true
	}
	var retry *Retryable
	if errors.As(err, &retry) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Verdict{Class: ClassRetryable}, true
	}
	return Verdict{}, false
}
