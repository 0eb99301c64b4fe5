package shiftboss

import (
	"encoding/json"
	"time"
)

// Job is one attempt of a job, as a handler sees it.
//
// Stopping a handler takes two steps. First the worker asks: Stopping() is closed and
// StopReason() says why (the job was cancelled, the attempt's deadline passed, the
// worker's lease lapsed, the worker is shutting down). A handler that watches
// Stopping() can save its work and return. Then, after the grace period (the
// operator's cancel grace, 5 s by default), the handler's context is cancelled with
// the same *StopError as its cause. An abandoned attempt skips the first step.
type Job struct {
	AttemptID string          // "<job uid>.<attempt number>"
	Ref       JobRef          // the Job's namespace, name and uid
	Attempt   int             // 1 for the first attempt
	Skill     string          // the skill asked for
	Params    json.RawMessage // the Job's spec.params, already checked against the input schema
	Deadline  *time.Time      // when the attempt must end, if the Job has a timeout
	WorkerID  string          // this worker

	progress   func(percent float64, message string) error
	stopping   <-chan struct{}
	stopReason func() *StopError
}

// Progress reports how far the attempt has got (0 to 100) with a short message.
// It is advisory: transient failures are not retried. It returns ErrNotCurrent
// (and the handler's context is cancelled) when the attempt is no longer current.
func (j *Job) Progress(percent float64, message string) error {
	if j.progress == nil {
		return nil
	}
	return j.progress(percent, message)
}

// Stopping is closed when the worker asks the handler to stop; the handler's context
// is cancelled a grace period later. (A Job built by hand never stops.)
func (j *Job) Stopping() <-chan struct{} { return j.stopping }

// StopReason says why Stopping was closed; nil while the attempt runs undisturbed.
func (j *Job) StopReason() *StopError {
	if j.stopReason == nil {
		return nil
	}
	return j.stopReason()
}

// Decode unmarshals Params into v. A failure is a fatal *ParamsError (error type
// "InvalidParams"), so a handler can return it as it is.
func (j *Job) Decode(v any) error {
	if err := json.Unmarshal(j.Params, v); err != nil {
		return Fatal(&ParamsError{Err: err})
	}
	return nil
}
