package bus

import (
	"context"
	"errors"
	"time"

	"github.com/amrpipe/amrpipe/pkg/sharepoint/spo"
)

// Retryable marks a failure that may pass on a later attempt. It counts toward the stage's
// failure limit. An error no wrapper marks and that is not from SharePoint is retryable too.
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

func (e *Permanent) Error() string {
	if e.Err == nil {
		return "permanent: " + e.Reason
	}
	return "permanent: " + e.Reason + ": " + e.Err.Error()
}
func (e *Permanent) Unwrap() error { return e.Err }

// Later is not a failure: the message is not finished and should come back after After. The
// progress-relay uses it as its poll timer (one message per live job, redelivered until JobEnd).
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
}

// Classify is the one place that decides what an error means for a message. Wrappers of this
// package win, in the order Permanent, Throttled, Later, Retryable; then SharePoint errors are
// mapped through spo.Classify (a 429/503 with its Retry-After is throttled, a 500 is permanent);
// context cancellation and anything else is retryable, so that unknown trouble is retried a
// bounded number of times and then dead-lettered rather than lost.
func Classify(err error) Verdict {
	if err == nil {
		return Verdict{Class: ClassAck}
	}
	var perm *Permanent
	if errors.As(err, &perm) {
		return Verdict{Class: ClassPermanent, Reason: err.Error()}
	}
	var thr *Throttled
	if errors.As(err, &thr) {
		return Verdict{Class: ClassThrottled, Delay: thr.RetryAfter}
	}
	var later *Later
	if errors.As(err, &later) {
		return Verdict{Class: ClassLater, Delay: later.After}
	}
	var retry *Retryable
	if errors.As(err, &retry) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Verdict{Class: ClassRetryable}
	}
	if isSharePoint(err) {
		switch spo.Classify(err) {
		case spo.ClassThrottled:
			v := Verdict{Class: ClassThrottled}
			var se *spo.Error
			if errors.As(err, &se) {
				v.Delay = se.RetryAfter
			}
			return v
		case spo.ClassPermanent:
			return Verdict{Class: ClassPermanent, Reason: err.Error()}
		}
	}
	return Verdict{Class: ClassRetryable}
}

// isSharePoint reports an error that pkg/sharepoint/spo produced (its Classify calls every other error
// permanent, which is right for SharePoint calls but not for, say, a NATS timeout).
func isSharePoint(err error) bool {
	var (
		se  *spo.Error
		te  *spo.TransportError
		tok *spo.TokenError
	)
	return errors.As(err, &se) || errors.As(err, &te) || errors.As(err, &tok)
}
