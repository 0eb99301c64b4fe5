package shiftboss

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestCancelAsksFirstAndCancelsTheContextAfterTheGrace(t *testing.T) {
	for _, tc := range []struct {
		name          string
		commandGrace  *float64 // nil: the grace the registration gave
		registerGrace float64
		want          time.Duration
	}{
		{"the command's grace", ptr(0.15), 0.01, 150 * time.Millisecond},
		{"the registration's grace", nil, 0.2, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			op := newFakeOperator(t)
			op.with(func() { op.session.CancelGraceSeconds = ptr(tc.registerGrace) })
			w := newTestWorker(op, testConfig(op.url))
			p := newProbe(t)
			w.Handle("job", p.handle, nil)
			id := op.enqueue("job", `{}`)
			start(t, w)
			wait(t, "the handler", p.started)
			op.command(Command{Type: CommandCancel, AttemptID: id, Reason: "the job was cancelled by alice", GraceSeconds: tc.commandGrace})
			wait(t, "the request to stop", p.stopping)
			wait(t, "the context's cancellation", p.cancelled)
			reason, errAtStopping, cause, stoppingAt, cancelledAt := p.seen()
			if reason == nil || reason.Kind != StopCancelled || reason.Reason != "the job was cancelled by alice" {
				t.Errorf("StopReason = %+v", reason)
			}
			if errAtStopping != nil {
				t.Errorf("the context was already done when Stopping closed: %v", errAtStopping)
			}
			if grace := cancelledAt.Sub(stoppingAt); grace < tc.want-10*time.Millisecond {
				t.Errorf("the context was cancelled %v after the request to stop, want %v", grace, tc.want)
			}
			var stop *StopError
			if !errors.As(cause, &stop) || stop.Kind != StopCancelled {
				t.Errorf("context.Cause = %v, want the *StopError", cause)
			}
			op.settledAfter(t, id)
			op.with(func() {
				got := op.fails[id]
				if got.ErrorType != "Cancelled" || got.Retryable || got.Message != "the job was cancelled by alice" {
					t.Errorf("reported %+v, want a non-retryable Cancelled", got)
				}
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestAHandlerThatFinishesWithinTheGraceIsCompleted(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	p.completeOnStop = true
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	op.command(Command{Type: CommandCancel, AttemptID: id, Reason: "cancelled", GraceSeconds: ptr(5.0)})
	op.settledAfter(t, id)
	op.with(func() {
		if got := string(op.completes[id]); got != `"saved"` || len(op.fails) != 0 {
			t.Errorf("completes %q, fails %+v: finished work must be reported", got, op.fails)
		}
	})
}

func TestTheAssignmentsDeadlineStopsItAsTimedOut(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	deadline := time.Now().Add(100 * time.Millisecond)
	op.with(func() { op.queue[0].Deadline = &deadline })
	start(t, w)
	wait(t, "the request to stop", p.stopping)
	reason, errAtStopping, _, stoppingAt, _ := p.seen()
	if reason == nil || reason.Kind != StopTimedOut || errAtStopping != nil {
		t.Errorf("StopReason = %+v, ctx.Err() = %v", reason, errAtStopping)
	}
	if stoppingAt.Before(deadline) {
		t.Errorf("asked to stop at %v, before the deadline %v", stoppingAt, deadline)
	}
	op.settledAfter(t, id)
	op.with(func() {
		if got := op.fails[id]; got.ErrorType != "TimedOut" || !got.Retryable {
			t.Errorf("reported %+v, want a retryable TimedOut", got)
		}
	})
}

func TestAbandonStopsAtOnceAndReportsNothing(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	op.command(Command{Type: CommandAbandon, AttemptID: id, Reason: "lease lost"})
	wait(t, "the context's cancellation", p.cancelled)
	wait(t, "Stopping, closed with it", p.stopping)
	if reason, _, cause, _, _ := p.seen(); reason == nil || reason.Kind != StopAbandoned || !errors.Is(cause, error(reason)) {
		t.Errorf("StopReason = %+v, cause %v", reason, cause)
	}
	eventually(t, "the slot to be freed", func() bool { return w.runningCount() == 0 })
	op.heartbeatsAfter(t, 3)
	if op.listed(id) {
		t.Error("an abandoned attempt is still in the heartbeat")
	}
	if n := op.reports(id); n != 0 {
		t.Errorf("reported %d times after abandon", n)
	}
}

func TestProgressAnswered409AbandonsTheAttempt(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	op.inject("progress", 1, fault{status: 409, code: "attempt_not_current"})
	progressErr := make(chan error, 1)
	w.Handle("job", func(ctx context.Context, job *Job) (any, error) {
		progressErr <- job.Progress(10, "starting")
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	if err := <-progressErr; !errors.Is(err, ErrNotCurrent) {
		t.Errorf("Progress = %v, want ErrNotCurrent", err)
	}
	eventually(t, "the slot to be freed", func() bool { return w.runningCount() == 0 })
	op.heartbeatsAfter(t, 3)
	if n := op.reports(id); n != 0 {
		t.Errorf("reported %d times for an attempt that is not current", n)
	}
}

// The slot of a stopped attempt stays taken until its handler has really returned,
// however it was stopped: no claim for it, and no report, before then.
func TestASlotStaysTakenUntilTheHandlerReturns(t *testing.T) {
	cases := []struct {
		name   string
		report string // what is reported once the handler returns ("" for nothing)
		stop   func(op *fakeOperator, id string)
		setup  func(op *fakeOperator)
	}{
		{"cancel", "Cancelled", func(op *fakeOperator, id string) {
			op.command(Command{Type: CommandCancel, AttemptID: id, GraceSeconds: ptr(0.0)})
		}, nil},
		{"abandon", "", func(op *fakeOperator, id string) {
			op.command(Command{Type: CommandAbandon, AttemptID: id})
		}, nil},
		{"deadline", "TimedOut", nil, func(op *fakeOperator) {
			deadline := time.Now().Add(50 * time.Millisecond)
			op.queue[0].Deadline = &deadline
		}},
		{"lease lapse", "LeaseExpired", func(op *fakeOperator, id string) {
			op.always("heartbeat", fault{status: 500})
		}, func(op *fakeOperator) { op.queue[0].LeaseSeconds = 0.1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			op := newFakeOperator(t)
			w := newTestWorker(op, testConfig(op.url))
			p := newProbe(t)
			p.ignoreCtx = true
			w.Handle("job", p.handle, nil)
			id := op.enqueue("job", `{}`)
			if tc.setup != nil {
				op.with(func() { tc.setup(op) })
			}
			start(t, w)
			wait(t, "the handler", p.started)
			if tc.stop != nil {
				tc.stop(op, id)
			}
			wait(t, "the context's cancellation", p.cancelled)
			claims := op.count("claim", "")
			op.requestsAfter(t, "heartbeat", 5)
			if n := op.count("claim", ""); n != claims {
				t.Errorf("%d claims while the stopped handler still ran", n-claims)
			}
			if n := op.reports(id); n != 0 {
				t.Errorf("reported before the handler returned")
			}
			op.clear("heartbeat")
			p.let()
			op.requestsAfter(t, "claim", 1) // the slot is free again
			if tc.report == "" {
				return
			}
			op.settledAfter(t, id)
			op.with(func() {
				if got := op.fails[id].ErrorType; got != tc.report {
					t.Errorf("reported %q, want %q", got, tc.report)
				}
			})
		})
	}
}
