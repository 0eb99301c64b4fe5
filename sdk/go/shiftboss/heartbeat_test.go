package shiftboss

import (
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
