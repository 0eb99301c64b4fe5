package shiftboss

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestHeartbeatsListEveryAttemptHeld(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	p.ignoreCtx = true
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	op.heartbeatsAfter(t, 2)
	if !op.listed(id) {
		t.Error("a running attempt is not in the heartbeat")
	}
	op.command(Command{Type: CommandCancel, AttemptID: id, GraceSeconds: ptr(0.0)})
	wait(t, "the context's cancellation", p.cancelled)
	op.heartbeatsAfter(t, 2)
	if !op.listed(id) {
		t.Error("a stopping attempt is not in the heartbeat")
	}
	op.always("fail", fault{status: 503})
	p.let()
	op.requestsAfter(t, "fail", 2)
	op.heartbeatsAfter(t, 2)
	if !op.listed(id) {
		t.Error("an attempt awaiting delivery is not in the heartbeat")
	}
	op.clear("fail")
	op.settledAfter(t, id)
}

func TestAHeartbeatGivesUpAfterOneInterval(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.HeartbeatIntervalSeconds = 0.1 })
	w := newTestWorker(op, testConfig(op.url))
	w.t.heartbeatTimeoutMin = 0
	w.Handle("add", add, addSchema)
	op.always("heartbeat", fault{hang: true})
	start(t, w)
	eventually(t, "three hung heartbeats", func() (ok bool) {
		op.with(func() { ok = len(op.hangs) >= 3 })
		return ok
	})
	op.with(func() {
		for _, d := range op.hangs {
			// The client's own timeout is 2 s: the beat gave up after its interval.
			if d > time.Second {
				t.Errorf("a heartbeat waited %v for an answer, want about the 100ms interval", d)
			}
		}
	})
}

func TestHeartbeatTimeoutIsOneIntervalWithinBounds(t *testing.T) {
	w := NewWorker(Config{})
	for interval, want := range map[time.Duration]time.Duration{
		100 * time.Millisecond: time.Second,
		5 * time.Second:        5 * time.Second,
		time.Minute:            10 * time.Second,
	} {
		w.session.interval = interval
		if got := w.heartbeatTimeout(); got != want {
			t.Errorf("interval %v: timeout %v, want %v", interval, got, want)
		}
	}
}

func TestTheDrainIsHeardAtOnce(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.HeartbeatIntervalSeconds = 30 }) // no beat would come by itself
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	stop, _ := start(t, w)
	op.requestsAfter(t, "claim", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	op.with(func() {
		if n := len(op.heartbeats); n == 0 || !op.heartbeats[n-1].Draining {
			t.Errorf("heartbeats %+v: the operator did not hear of the drain", op.heartbeats)
		}
	})
}

func TestAHeartbeatListsAtMostTheProtocolsLimitRunningFirst(t *testing.T) {
	w := NewWorker(Config{})
	for i := range MaxHeartbeatAttempts + 10 {
		id := fmt.Sprintf("done-%04d.1", i)
		w.held[id] = &attempt{}
	}
	for _, id := range []string{"zz-running-a.1", "zz-running-b.1"} {
		at := &attempt{}
		w.held[id], w.running[id] = at, at
	}
	ids := w.heldIDs()
	if len(ids) != MaxHeartbeatAttempts {
		t.Fatalf("listed %d attempts, want %d", len(ids), MaxHeartbeatAttempts)
	}
	if !slices.Contains(ids, "zz-running-a.1") || !slices.Contains(ids, "zz-running-b.1") {
		t.Error("a running attempt was left out of the heartbeat")
	}
	if !slices.IsSorted(ids) {
		t.Error("the ids are not sorted")
	}
}

func TestAHeartbeatToAnOperatorThatForgotTheWorkerRegistersAgain(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	op.inject("heartbeat", 1, fault{status: 404, code: CodeWorkerNotRegistered})
	eventually(t, "a second registration", func() (ok bool) {
		op.with(func() { ok = len(op.registers) == 2 })
		return ok
	})
	op.heartbeatsAfter(t, 2)
	if !op.listed(id) {
		t.Error("the running attempt is not in the heartbeats after registering again")
	}
	p.let()
	op.settledAfter(t, id)
}
