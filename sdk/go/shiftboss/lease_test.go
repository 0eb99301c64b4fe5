package shiftboss

import (
	"testing"
	"time"
)

// shortLease is the lease of the attempts in these tests.
const shortLease = 200 * time.Millisecond

func TestTheLeaseDoesNotLapseWhileTheOperatorIsAbsent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		absent func(op *fakeOperator)
		back   func(op *fakeOperator)
	}{
		{"connection refused", func(op *fakeOperator) {
			op.down()
			time.Sleep(3 * shortLease) // the outage
		}, (*fakeOperator).up},
		{"503", func(op *fakeOperator) {
			op.always("heartbeat", fault{status: 503})
			op.requestsAfter(op.t, "heartbeat", 30) // 30 beats of 20ms: three leases
		}, func(op *fakeOperator) { op.clear("heartbeat") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			op := newFakeOperator(t)
			op.with(func() { op.session.LeaseSeconds = shortLease.Seconds() })
			w := newTestWorker(op, testConfig(op.url))
			p := newProbe(t)
			w.Handle("job", p.handle, nil)
			id := op.enqueue("job", `{}`)
			start(t, w)
			wait(t, "the handler", p.started)
			tc.absent(op)
			tc.back(op)
			op.heartbeatsAfter(t, 2)
			if reason, _, _, _, _ := p.seen(); reason != nil {
				t.Fatalf("stopped while the operator was absent: %+v", reason)
			}
			p.let()
			op.settledAfter(t, id)
			op.with(func() {
				if got := string(op.completes[id]); got != `"done"` {
					t.Errorf("result %q, fails %+v", got, op.fails)
				}
			})
		})
	}
}

func TestTheLeaseLapsesWhileTheOperatorIsUnreachable(t *testing.T) {
	for name, f := range map[string]fault{
		"timeouts":  {hang: true},
		"resets":    {drop: true},
		"500":       {status: 500},
		"502":       {status: 502},
		"429":       {status: 429},
		"other 4xx": {status: 400},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			op := newFakeOperator(t)
			op.with(func() { op.session.LeaseSeconds = shortLease.Seconds() })
			w := newTestWorker(op, testConfig(op.url))
			w.t.heartbeatTimeoutMin = 0
			p := newProbe(t)
			w.Handle("job", p.handle, nil)
			id := op.enqueue("job", `{}`)
			start(t, w)
			wait(t, "the handler", p.started)
			op.heartbeatsAfter(t, 1)
			cut := time.Now()
			op.always("heartbeat", f)
			wait(t, "the request to stop", p.stopping)
			reason, errAtStopping, _, stoppingAt, _ := p.seen()
			if reason == nil || reason.Kind != StopLeaseExpired || errAtStopping != nil {
				t.Errorf("StopReason = %+v, ctx.Err() = %v", reason, errAtStopping)
			}
			// The last answered beat was sent at most one interval (20ms) before the cut.
			if held := stoppingAt.Sub(cut); held < shortLease-50*time.Millisecond {
				t.Errorf("stopped %v after the operator became unreachable, before the %v lease ran out", held, shortLease)
			}
			op.clear("heartbeat")
			op.settledAfter(t, id)
			op.with(func() {
				if got := op.fails[id]; got.ErrorType != "LeaseExpired" || !got.Retryable {
					t.Errorf("reported %+v, want a retryable LeaseExpired", got)
				}
			})
		})
	}
}

func TestAClaimsLeaseRunsFromItsAnswer(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.LeaseSeconds = shortLease.Seconds() })
	w := newTestWorker(op, testConfig(op.url))
	w.t.heartbeatTimeoutMin = 0
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	op.always("heartbeat", fault{status: 500})              // no renewal: the lease is the claim's alone
	op.inject("claim", 1, fault{delay: shortLease * 3 / 4}) // a long poll that found the job late
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	answered := time.Now()
	wait(t, "the request to stop", p.stopping)
	reason, _, _, stoppingAt, _ := p.seen()
	if reason.Kind != StopLeaseExpired {
		t.Errorf("StopReason = %+v", reason)
	}
	if held := stoppingAt.Sub(answered); held < shortLease-50*time.Millisecond {
		t.Errorf("the lease lapsed %v after the claim was answered, want %v: it runs from the answer", held, shortLease)
	}
	op.clear("heartbeat")
	op.settledAfter(t, id)
}
