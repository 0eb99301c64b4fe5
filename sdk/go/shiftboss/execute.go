package shiftboss

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// runAttempt runs the handler, frees the slot once it has really returned, then
// delivers the outcome.
func (w *Worker) runAttempt(at *attempt, job *Job) {
	out := w.execute(at, job)
	w.mu.Lock()
	delete(w.running, at.id())
	w.touch()
	w.mu.Unlock()
	at.markReturned()
	if !at.takeReport() {
		return // abandoned, or released by the drain while the handler ignored it
	}
	log := w.attemptLog(at)
	switch {
	case out.fail != nil:
		log.Warn("failed", "error_type", out.fail.ErrorType, "retryable", out.fail.Retryable, "message", out.fail.Message)
	case out.release != nil:
		log.Info("stopped: releasing", "reason", out.release.Reason)
	default:
		log.Info("succeeded")
	}
	w.deliver(at, out)
}

// execute calls the handler and turns what it returns into an outcome.
func (w *Worker) execute(at *attempt, job *Job) outcome {
	name := at.assignment.Skill
	sk := w.skills[name]
	if sk == nil {
		known := make([]string, 0, len(w.skills))
		for n := range w.skills {
			known = append(known, n)
		}
		sort.Strings(known)
		msg := fmt.Sprintf("this worker has no skill %q (it has: %s)", name, strings.Join(known, ", "))
		return outcome{fail: failReport("UnknownSkill", msg, false)}
	}
	if stop := at.stopRequest(); stop != nil {
		return stopOutcome(stop) // stopped before it began
	}
	result, err := call(sk.handler, at.ctx, job)
	return resultOutcome(name, result, err, at.stopRequest())
}

// call runs a handler, turning a panic into an error.
func call(h HandlerFunc, ctx context.Context, job *Job) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = nil, &panicError{value: r}
		}
	}()
	return h(ctx, job)
}

type panicError struct{ value any }

func (e *panicError) Error() string     { return fmt.Sprintf("the handler panicked: %v", e.value) }
func (e *panicError) ErrorType() string { return "Panic" }

// sendProgress reports progress for a handler; see Job.Progress.
func (w *Worker) sendProgress(at *attempt, percent float64, message string) error {
	if at.isAbandoned() {
		return nil
	}
	report := &ProgressReport{Percent: min(max(percent, 0), 100), Message: truncate(message, 1024)}
	err := w.Client.Progress(at.ctx, at.id(), report)
	if errors.Is(err, ErrNotCurrent) {
		w.attemptLog(at).Info("the operator says the attempt is no longer current: abandoned")
		at.abandon("no longer current")
		w.forget(at)
	}
	return err
}
