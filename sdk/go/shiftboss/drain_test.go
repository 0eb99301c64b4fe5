package shiftboss

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestShutdownFinishesRunningAttempts(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	running := make(chan struct{})
	w.Handle("slow", func(ctx context.Context, job *Job) (any, error) {
		close(running)
		time.Sleep(100 * time.Millisecond)
		if job.StopReason() != nil {
			return nil, job.StopReason()
		}
		return "done", ctx.Err() // neither is stopped by the shutdown itself
	}, nil)
	id := op.enqueue("slow", `{}`)
	stop, _ := start(t, w)
	<-running
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	op.with(func() {
		if got := string(op.completes[id]); got != `"done"` {
			t.Errorf("result %q, fails %+v: the drain did not let the attempt finish", got, op.fails)
		}
	})
}

func TestTheDrainTimeoutReleasesWhatStillRuns(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.CancelGraceSeconds = ptr(0.05) })
	cfg := testConfig(op.url)
	cfg.Concurrency = 2
	cfg.DrainTimeout = 50 * time.Millisecond
	w := newTestWorker(op, cfg)
	polite, stubborn := newProbe(t), newProbe(t)
	stubborn.ignoreCtx = true // never returns before the test ends
	w.Handle("polite", polite.handle, nil)
	w.Handle("stubborn", stubborn.handle, nil)
	politeID, stubbornID := op.enqueue("polite", `{}`), op.enqueue("stubborn", `{}`)
	stop, _ := start(t, w)
	wait(t, "the polite handler", polite.started)
	wait(t, "the stubborn handler", stubborn.started)
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	if reason, errAtStopping, _, _, _ := polite.seen(); reason == nil || reason.Kind != StopReleased || errAtStopping != nil {
		t.Errorf("StopReason = %+v, ctx.Err() = %v: asked to stop first", reason, errAtStopping)
	}
	op.with(func() {
		for _, id := range []string{politeID, stubbornID} {
			if got := op.releases[id].Reason; !strings.Contains(got, "shutting down") {
				t.Errorf("%s: release %q, want a release saying the worker is shutting down", id, got)
			}
		}
		if len(op.fails) != 0 || len(op.completes) != 0 {
			t.Errorf("fails %+v, completes %v: a drain releases, it does not fail", op.fails, op.completes)
		}
	})
	for _, id := range []string{politeID, stubbornID} {
		if n := op.reports(id); n != 1 {
			t.Errorf("%s reported %d times", id, n)
		}
	}
}

func TestAssignWhileDrainingIsReleased(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url)) // drain timeout 5s: the busy handler keeps Run draining
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	busy := op.enqueue("job", `{}`)
	stop, done := start(t, w)
	wait(t, "the handler", p.started)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	eventually(t, "a draining heartbeat", func() (ok bool) {
		op.with(func() { ok = len(op.heartbeats) > 0 && op.heartbeats[len(op.heartbeats)-1].Draining })
		return ok
	})
	late := op.assignLater("job", `{}`)
	op.settledAfter(t, late)
	op.with(func() {
		if got := op.releases[late].Reason; !strings.Contains(got, "shutting down") {
			t.Errorf("release %q", got)
		}
	})
	select {
	case <-done:
		t.Fatal("Run returned while an attempt was running")
	default:
	}
	p.let()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if n := p.runs.Load(); n != 1 {
		t.Errorf("ran %d handlers, want only the one running before the drain", n)
	}
	op.with(func() {
		if string(op.completes[busy]) != `"done"` {
			t.Errorf("the running attempt was not completed: %v", op.completes)
		}
	})
}

func TestAClaimGivenUpByTheDrainIsReleased(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.HeartbeatIntervalSeconds = 30 }) // only the drain's beats
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	op.always("claim", fault{late: true}) // written, but the answer never comes
	id := op.enqueue("job", `{}`)
	stop, _ := start(t, w)
	eventually(t, "the claim to be written", func() bool { return op.isHeld(id) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := p.runs.Load(); n != 0 {
		t.Errorf("ran %d handlers after the drain began", n)
	}
	op.with(func() {
		if _, ok := op.releases[id]; !ok {
			t.Errorf("the attempt written for the lost claim was not released: %+v", op.releases)
		}
	})
}

func TestRunWaitsForOutcomesWhileTheOperatorIsAway(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	op.always("complete", fault{status: 503})
	id := op.enqueue("add", `{"a":1,"b":2}`)
	stop, done := start(t, w)
	op.requestsAfter(t, "complete", 1)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	op.requestsAfter(t, "complete", 3)
	select {
	case <-done:
		t.Fatal("Run returned with an outcome undelivered")
	default:
	}
	op.clear("complete")
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	op.with(func() {
		if got := string(op.completes[id]); got != "3" {
			t.Errorf("result %q, want 3", got)
		}
	})
}
