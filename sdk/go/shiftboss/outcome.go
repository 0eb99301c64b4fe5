package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// outcome is what is reported for an attempt: exactly one of the two.
type outcome struct {
	complete *CompleteReport
	fail     *FailReport
}

// runAttempt runs the handler, reports the outcome and frees the slot. The attempt
// stays in the heartbeat until its outcome is reported, so a slow report keeps its lease.
func (w *Worker) runAttempt(bg context.Context, at *attempt) {
	defer w.wg.Done()
	defer func() {
		at.cancel()
		w.mu.Lock()
		delete(w.attempts, at.id())
		w.mu.Unlock()
		close(at.done)
		select {
		case w.slotFreed <- struct{}{}:
		default:
		}
	}()
	a := at.assignment
	log := w.log().With("attempt_id", a.AttemptID, "job", a.Job.Namespace+"/"+a.Job.Name)
	log.Info("running", "skill", a.Skill, "attempt", a.Attempt)
	out := w.execute(at)
	if at.state().abandoned {
		log.Info("attempt abandoned: nothing reported")
		return
	}
	if out.fail != nil {
		log.Warn("failed", "error_type", out.fail.ErrorType, "retryable", out.fail.Retryable, "message", out.fail.Message)
	} else {
		log.Info("succeeded")
	}
	if at.takeReport() {
		w.deliver(bg, at, out)
	}
}

// execute calls the handler and turns what it returns into an outcome.
func (w *Worker) execute(at *attempt) outcome {
	sk := w.skills[at.assignment.Skill]
	if sk == nil {
		known := make([]string, 0, len(w.skills))
		for name := range w.skills {
			known = append(known, name)
		}
		sort.Strings(known)
		msg := fmt.Sprintf("this worker has no skill %q (it has: %s)", at.assignment.Skill, strings.Join(known, ", "))
		return outcome{fail: failReport("UnknownSkill", msg, false)}
	}
	if st := at.state(); st.cancelRequested || st.shutdown {
		return w.stoppedOutcome(at) // stopped before it started
	}
	result, err := call(sk.handler, at.ctx, at.job)
	if err != nil {
		if st := at.state(); st.cancelRequested || st.shutdown {
			return w.stoppedOutcome(at) // it failed because we asked it to stop
		}
		return outcome{fail: failureReport(err)}
	}
	data, err := json.Marshal(result)
	if err != nil {
		msg := fmt.Sprintf("skill %q returned a result that cannot be serialised to JSON: %v", sk.spec.Name, err)
		return outcome{fail: failReport("InvalidResult", msg, false)}
	}
	if len(data) > MaxInlineResultBytes {
		msg := fmt.Sprintf("skill %q returned a result of %d bytes, over the %d-byte limit; store large results elsewhere and return a reference",
			sk.spec.Name, len(data), MaxInlineResultBytes)
		return outcome{fail: failReport("ResultTooLarge", msg, false)}
	}
	return outcome{complete: &CompleteReport{Result: data}}
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

func (w *Worker) stoppedOutcome(at *attempt) outcome {
	st := at.state()
	if st.shutdown {
		return outcome{fail: w.shutdownReport()}
	}
	return outcome{fail: failReport("Cancelled", orDefault(st.reason, "cancelled by the operator"), false)}
}

func (w *Worker) shutdownReport() *FailReport {
	msg := fmt.Sprintf("worker %s shut down before the attempt finished (drain timeout %gs)",
		w.Config.WorkerID, w.Config.DrainTimeout.Seconds())
	return failReport("WorkerShutdown", msg, true)
}

// failureReport is how an error returned by a handler is reported.
func failureReport(err error) *FailReport {
	var fatal *FatalError
	return failReport(errorType(err), err.Error(), !errors.As(err, &fatal))
}

// failReport builds a FailReport with its fields cut to the protocol's limits.
func failReport(errorType, message string, retryable bool) *FailReport {
	return &FailReport{
		ErrorType: orDefault(truncate(errorType, 256), "Error"),
		Message:   truncate(message, 4096),
		Retryable: retryable,
	}
}

// truncate cuts s to at most n characters (the protocol counts characters).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// deliver reports the outcome, retrying transient trouble while the lease can last.
// A 409 (or an unknown attempt) means the operator has already decided: the attempt
// is dropped without another word.
func (w *Worker) deliver(bg context.Context, at *attempt, out outcome) {
	log := w.log().With("attempt_id", at.id())
	w.mu.Lock()
	budget := max(30*time.Second, w.lease)
	w.mu.Unlock()
	if w.draining != nil && w.draining.Err() != nil {
		budget = w.drainReportBudget
	}
	deadline := time.Now().Add(budget)
	delay := w.retryInitial
	for {
		sent := time.Now()
		var err error
		if out.complete != nil {
			err = w.Client.Complete(bg, at.id(), out.complete)
		} else {
			err = w.Client.Fail(bg, at.id(), out.fail)
		}
		var pe *ProtocolError
		switch {
		case err == nil:
			return
		case bg.Err() != nil:
			log.Error("outcome not reported", "error", err)
			return
		case errors.Is(err, ErrNotCurrent):
			log.Info("the operator says the attempt is no longer current: dropped", "error", err)
			return
		case errors.Is(err, ErrWorkerNotRegistered):
			// The operator restarted: the lease may still be ours, so register and report again.
			w.reregister(bg, sent)
		case errors.Is(err, ErrUnavailable), errors.Is(err, ErrUnauthorized):
		case errors.As(err, &pe) && pe.Status == 404:
			log.Info("the operator does not know the attempt: dropped", "error", err)
			return
		case errors.As(err, &pe):
			log.Error("the operator refused the outcome", "error", err)
			return
		}
		if time.Now().Add(delay).After(deadline) {
			log.Error("giving up reporting the outcome", "after", budget, "error", err)
			return
		}
		log.Warn("reporting the outcome failed; retrying", "error", err, "retry_in", delay)
		time.Sleep(delay)
		delay = min(delay*2, w.retryMax)
	}
}

// sendProgress reports progress for a handler; see Job.Progress.
func (w *Worker) sendProgress(bg context.Context, at *attempt, percent float64, message string) error {
	if st := at.state(); st.abandoned || st.shutdown {
		return nil
	}
	report := &ProgressReport{Percent: min(max(percent, 0), 100), Message: truncate(message, 1024)}
	err := w.Client.Progress(bg, at.id(), report)
	if errors.Is(err, ErrNotCurrent) {
		w.log().Info("the operator says the attempt is no longer current: abandoned", "attempt_id", at.id())
		at.stop("abandon", "no longer current")
	}
	return err
}

// finish drains: it waits up to the drain timeout for the running attempts, then
// cancels the rest and hands them back as retryable WorkerShutdown failures.
func (w *Worker) finish(bg context.Context) {
	all := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(all)
	}()
	if n := w.running(); n > 0 {
		w.log().Info("draining: waiting for running attempts", "running", n, "timeout", w.Config.DrainTimeout)
	}
	timer := time.NewTimer(w.Config.DrainTimeout)
	defer timer.Stop()
	select {
	case <-all:
		return
	case <-timer.C:
	}
	w.mu.Lock()
	leftovers := make([]*attempt, 0, len(w.attempts))
	for _, at := range w.attempts {
		leftovers = append(leftovers, at)
	}
	w.mu.Unlock()
	w.log().Warn("drain timeout: handing back running attempts", "count", len(leftovers))
	for _, at := range leftovers {
		at.stop("shutdown", "the worker is shutting down")
	}
	grace := time.NewTimer(w.shutdownGrace)
	defer grace.Stop()
	select {
	case <-all:
		return
	case <-grace.C:
	}
	// Handlers that ignore their context: report for them.
	var reports sync.WaitGroup
	for _, at := range leftovers {
		if at.takeReport() {
			reports.Add(1)
			go func() {
				defer reports.Done()
				w.deliver(bg, at, outcome{fail: w.shutdownReport()})
			}()
		}
	}
	reports.Wait()
}
