package shiftboss

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// probe is a handler that records what it sees of being stopped and returns when let.
type probe struct {
	ignoreCtx      bool // return only when let, whatever happens to ctx (then with ctx.Err())
	completeOnStop bool // return a result as soon as Stopping is closed

	runs      atomic.Int32
	started   chan struct{} // closed when the handler begins
	stopping  chan struct{} // closed when it sees job.Stopping()
	cancelled chan struct{} // closed when it sees ctx done
	release   chan struct{} // closed by let
	once      [4]sync.Once

	mu               sync.Mutex
	reason           *StopError // job.StopReason() once Stopping was closed
	ctxErrAtStopping error      // ctx.Err() at that moment: nil while the grace runs
	cause            error      // context.Cause(ctx) once ctx was done
	stoppingAt       time.Time
	cancelledAt      time.Time
}

func newProbe(t *testing.T) *probe {
	p := &probe{
		started:   make(chan struct{}),
		stopping:  make(chan struct{}),
		cancelled: make(chan struct{}),
		release:   make(chan struct{}),
	}
	t.Cleanup(p.let)
	return p
}

// let lets the handler return.
func (p *probe) let() { p.once[3].Do(func() { close(p.release) }) }

func (p *probe) handle(ctx context.Context, job *Job) (any, error) {
	p.runs.Add(1)
	p.once[0].Do(func() { close(p.started) })
	go func() {
		select {
		case <-job.Stopping():
		case <-p.release:
			return
		}
		p.mu.Lock()
		p.stoppingAt, p.reason, p.ctxErrAtStopping = time.Now(), job.StopReason(), ctx.Err()
		p.mu.Unlock()
		p.once[1].Do(func() { close(p.stopping) })
	}()
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		p.cancelledAt, p.cause = time.Now(), context.Cause(ctx)
		p.mu.Unlock()
		p.once[2].Do(func() { close(p.cancelled) })
	}()
	switch {
	case p.completeOnStop:
		<-job.Stopping()
		return "saved", nil
	case p.ignoreCtx:
		<-p.release
		return nil, ctx.Err()
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.release:
		return "done", nil
	}
}

// wait fails the test unless ch is closed within 5 seconds.
func wait(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// seen returns what the probe recorded.
func (p *probe) seen() (reason *StopError, errAtStopping, cause error, stoppingAt, cancelledAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reason, p.ctxErrAtStopping, p.cause, p.stoppingAt, p.cancelledAt
}
