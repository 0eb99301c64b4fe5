package shiftboss

// StopKind says why the worker stops an attempt before its handler has returned.
type StopKind string

// The reasons to stop an attempt, and what is reported for it when the handler
// returns an error (a handler that returns a result has it reported, whatever the stop).
const (
	// StopCancelled: the operator sent cancel (the job was cancelled, or it passed a
	// deadline the operator enforces). Reported as fail "Cancelled", not retryable.
	StopCancelled StopKind = "Cancelled"
	// StopTimedOut: the assignment's Deadline passed. Reported as fail "TimedOut", retryable.
	StopTimedOut StopKind = "TimedOut"
	// StopLeaseExpired: the worker could not renew its lease in time (the operator
	// was unreachable, not merely away), so the job may already run elsewhere.
	// Reported as fail "LeaseExpired", retryable.
	StopLeaseExpired StopKind = "LeaseExpired"
	// StopReleased: the worker is shutting down and its drain timeout passed. The
	// attempt is released: its job is queued again and the attempt is not counted.
	StopReleased StopKind = "Released"
	// StopAbandoned: the operator has already decided the attempt. Nothing is
	// reported, and the handler's context is cancelled at once.
	StopAbandoned StopKind = "Abandoned"
)

// StopError says why a handler is asked to stop. Job.StopReason returns it once
// Job.Stopping is closed, and it is the cause of the handler's context once that is
// cancelled: errors.As(context.Cause(ctx), &stop).
type StopError struct {
	Kind   StopKind
	Reason string // for humans, e.g. "the job was cancelled by alice"
}

func (e *StopError) Error() string {
	return "shiftboss: attempt stopped (" + string(e.Kind) + "): " + e.Reason
}

// stopOutcome is what is reported for an attempt stopped by s whose handler failed
// (or never ran).
func stopOutcome(s *StopError) outcome {
	switch s.Kind {
	case StopCancelled:
		return outcome{fail: failReport("Cancelled", s.Reason, false)}
	case StopTimedOut:
		return outcome{fail: failReport("TimedOut", s.Reason, true)}
	case StopLeaseExpired:
		return outcome{fail: failReport("LeaseExpired", s.Reason, true)}
	case StopReleased:
		return outcome{release: &ReleaseReport{Reason: truncate(s.Reason, 1024)}}
	}
	return outcome{} // abandoned: the operator has decided, nothing to say
}
