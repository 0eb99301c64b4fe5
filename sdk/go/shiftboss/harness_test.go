package shiftboss

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// The harness of the Worker tests: a worker with short timings against the fake
// operator, and waits on events the fake records.

func testConfig(url string) Config {
	return Config{
		OperatorURL:  url,
		Pool:         "pool",
		WorkerID:     "w-1",
		TokenFile:    "/unused",
		Concurrency:  1,
		DrainTimeout: 5 * time.Second,
		ClaimWait:    0,
		OutcomeRetry: 5 * time.Second,
	}
}

// newTestWorker is a Worker for op with short timings.
func newTestWorker(op *fakeOperator, cfg Config) *Worker {
	w := NewWorker(cfg)
	w.Client = testClient(op.url)
	if !testing.Verbose() {
		w.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w.t = timings{
		retryInitial:        5 * time.Millisecond,
		retryMax:            20 * time.Millisecond,
		minClaimInterval:    5 * time.Millisecond,
		outcomeInitial:      5 * time.Millisecond,
		outcomeMax:          20 * time.Millisecond,
		heartbeatTimeoutMin: 200 * time.Millisecond,
		heartbeatTimeoutMax: time.Second,
		stubbornWait:        100 * time.Millisecond,
		finalBeats:          3,
	}
	return w
}

func testClient(url string) *Client {
	c := NewClient(url, func() (string, error) { return "tok", nil })
	c.Timeout = 2 * time.Second
	c.Retries = 3
	c.BackoffInitial = time.Millisecond
	c.BackoffMax = 4 * time.Millisecond
	return c
}

// start runs w until the returned stop is called (also at cleanup); stop returns
// Run's error. done is closed when Run has returned.
func start(t *testing.T, w *Worker) (stop func() error, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var err error
	go func() {
		err = w.Run(ctx)
		close(finished)
	}()
	stop = func() error {
		cancel()
		select {
		case <-finished:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return within 10s of cancellation")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop, finished
}

// eventually fails the test unless cond becomes true within 5 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// heartbeatsAfter waits until n more heartbeats have been processed: the negative
// checks of a test wait on this event instead of a fixed sleep.
func (op *fakeOperator) heartbeatsAfter(t *testing.T, n int) {
	t.Helper()
	var base int
	op.with(func() { base = len(op.heartbeats) })
	eventually(t, fmt.Sprintf("%d more heartbeats", n), func() (ok bool) {
		op.with(func() { ok = len(op.heartbeats) >= base+n })
		return ok
	})
}

// requestsAfter waits until n more requests of action have arrived (answered or not).
func (op *fakeOperator) requestsAfter(t *testing.T, action string, n int) {
	t.Helper()
	base := op.count(action, "")
	eventually(t, fmt.Sprintf("%d more %s requests", n, action), func() bool { return op.count(action, "") >= base+n })
}

// listed says whether the last heartbeat processed listed id.
func (op *fakeOperator) listed(id string) bool {
	ids, _ := op.lastHeartbeat()
	return slices.Contains(ids, id)
}

// settledAfter waits until id has been reported and a heartbeat built after that
// (not the one in flight) no longer lists it: its delivery is over.
func (op *fakeOperator) settledAfter(t *testing.T, id string) {
	t.Helper()
	eventually(t, "a report of "+id, func() bool { return op.reports(id) > 0 })
	var base int
	op.with(func() { base = len(op.heartbeats) })
	eventually(t, id+" to leave the heartbeats", func() (left bool) {
		op.with(func() {
			for i := base + 1; i < len(op.heartbeats); i++ {
				left = left || !slices.Contains(op.heartbeats[i].AttemptIDs, id)
			}
		})
		return left
	})
}

// count is how many requests of action (for id, unless empty) arrived.
func (op *fakeOperator) count(action, id string) int {
	n := 0
	op.with(func() {
		for _, r := range op.requests {
			if r.action == action && (id == "" || r.id == id) {
				n++
			}
		}
	})
	return n
}

// reports is how many outcome reports (complete, fail, release) arrived for id.
func (op *fakeOperator) reports(id string) int {
	return op.count("complete", id) + op.count("fail", id) + op.count("release", id)
}

// lastHeartbeat is the attempt ids of the last heartbeat processed.
func (op *fakeOperator) lastHeartbeat() (ids []string, ok bool) {
	op.with(func() {
		if n := len(op.heartbeats); n > 0 {
			ids, ok = op.heartbeats[n-1].AttemptIDs, true
		}
	})
	return ids, ok
}

func (op *fakeOperator) isHeld(id string) (held bool) {
	op.with(func() { _, held = op.held[id] })
	return held
}
