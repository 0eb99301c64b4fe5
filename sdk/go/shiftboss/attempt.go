package shiftboss

import (
	"context"
	"sync"
)

// attempt is the worker's bookkeeping for one running attempt.
type attempt struct {
	assignment Assignment
	job        *Job
	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{} // closed when its goroutine has finished

	mu              sync.Mutex
	reason          string
	cancelRequested bool // the operator's cancel command
	abandoned       bool // the operator's abandon command or a 409: report nothing
	shutdown        bool // given up at the end of a drain
	reporting       bool // someone has taken on reporting the outcome
}

func (a *attempt) id() string { return a.assignment.AttemptID }

// stop records why the attempt is being stopped and cancels its context.
// kind is one of "cancel", "abandon", "shutdown".
func (a *attempt) stop(kind, reason string) {
	a.mu.Lock()
	switch kind {
	case "cancel":
		a.cancelRequested = true
	case "abandon":
		a.abandoned = true
	case "shutdown":
		a.shutdown = true
	}
	if a.reason == "" {
		a.reason = reason
	}
	a.mu.Unlock()
	a.cancel()
}

type attemptState struct {
	reason                               string
	cancelRequested, abandoned, shutdown bool
}

func (a *attempt) state() attemptState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return attemptState{a.reason, a.cancelRequested, a.abandoned, a.shutdown}
}

// takeReport returns true once: to whoever reports the outcome.
func (a *attempt) takeReport() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reporting || a.abandoned {
		return false
	}
	a.reporting = true
	return true
}
