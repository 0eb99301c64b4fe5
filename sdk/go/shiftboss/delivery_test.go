package shiftboss

import (
	"testing"
	"time"
)

func TestOutcomeIsResentWithBackoffUntilAnswered(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	for _, f := range []fault{{status: 503}, {status: 429}, {status: 502}, {status: 500}, {hang: true}} {
		op.inject("complete", 1, f)
	}
	w.Client.Timeout = 100 * time.Millisecond // the hung try gives up quickly
	id := op.enqueue("add", `{"a":2,"b":3}`)
	start(t, w)
	eventually(t, "the third try", func() bool { return op.count("complete", id) >= 3 })
	if !op.listed(id) {
		op.heartbeatsAfter(t, 1)
		if !op.listed(id) {
			t.Errorf("an attempt awaiting delivery is not in the heartbeat")
		}
	}
	eventually(t, "the result", func() (ok bool) {
		op.with(func() { ok = op.completes[id] != nil })
		return ok
	})
	op.settledAfter(t, id)
	if n := op.count("complete", id); n != 6 {
		t.Errorf("sent %d times, want 6 (5 faults, then the answer)", n)
	}
	// The waits between tries double from outcomeInitial (equal jitter: at least half).
	var times []time.Time
	op.with(func() {
		for _, r := range op.requests {
			if r.action == "complete" {
				times = append(times, r.at)
			}
		}
	})
	for i := 1; i < len(times)-1; i++ { // the last wait also holds the hung try
		floor := min(w.t.outcomeInitial<<(i-1), w.t.outcomeMax) / 2
		if gap := times[i].Sub(times[i-1]); gap < floor {
			t.Errorf("re-send %d came %v after the previous one, want at least %v", i, gap, floor)
		}
	}
}

func TestOutcomeSurvivesTheOperatorBeingDown(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.session.LeaseSeconds = 0.2 })
	w := newTestWorker(op, testConfig(op.url))
	p := newProbe(t)
	w.Handle("job", p.handle, nil)
	id := op.enqueue("job", `{}`)
	start(t, w)
	wait(t, "the handler", p.started)
	op.down()
	p.let()                            // it finishes while the operator is away
	time.Sleep(600 * time.Millisecond) // the outage: three leases (the old SDK gave up after a few tries)
	op.up()
	eventually(t, "the result after the outage", func() (ok bool) {
		op.with(func() { ok = string(op.completes[id]) == `"done"` })
		return ok
	})
	op.settledAfter(t, id)
	if reason, _, _, _, _ := p.seen(); reason != nil {
		t.Errorf("the handler was asked to stop while the operator was absent: %+v", reason)
	}
}

func TestOutcomeRetryIsTheBudget(t *testing.T) {
	op := newFakeOperator(t)
	cfg := testConfig(op.url)
	cfg.OutcomeRetry = 150 * time.Millisecond
	w := newTestWorker(op, cfg)
	w.Handle("add", add, addSchema)
	op.always("complete", fault{status: 503})
	id := op.enqueue("add", `{"a":1,"b":1}`)
	start(t, w)
	op.settledAfter(t, id) // given up: no longer held
	var first, last time.Time
	op.with(func() {
		for _, r := range op.requests {
			if r.action == "complete" {
				if first.IsZero() {
					first = r.at
				}
				last = r.at
			}
		}
	})
	if n := op.count("complete", id); n < 3 {
		t.Errorf("sent %d times within the budget, want several", n)
	}
	if span := last.Sub(first); span > cfg.OutcomeRetry {
		t.Errorf("re-sent for %v, over the %v budget", span, cfg.OutcomeRetry)
	}
}

func TestAnswersThatSettleOrDropAReport(t *testing.T) {
	cases := []struct {
		name string
		f    fault
	}{
		{"409 not current", fault{status: 409, code: "attempt_not_current"}},
		{"404 unknown attempt", fault{status: 404, code: CodeUnknownAttempt}},
		{"413 too large", fault{status: 413, code: "result_too_large"}},
		{"422 refused: dropped", fault{status: 422, code: "invalid"}},
		{"403 refused: dropped", fault{status: 403, code: "wrong_pool"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			op := newFakeOperator(t)
			w := newTestWorker(op, testConfig(op.url))
			w.Handle("add", add, addSchema)
			op.always("complete", tc.f)
			id := op.enqueue("add", `{"a":1,"b":1}`)
			next := op.enqueue("add", `{"a":2,"b":2}`)
			start(t, w)
			op.settledAfter(t, next)
			op.settledAfter(t, id)
			if n := op.reports(id); n != 1 {
				t.Errorf("sent %d times, want once", n)
			}
		})
	}
}

func TestWorkerNotRegisteredRegistersAgainThenResends(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	op.inject("complete", 1, fault{status: 404, code: CodeWorkerNotRegistered})
	id := op.enqueue("add", `{"a":1,"b":2}`)
	start(t, w)
	op.settledAfter(t, id)
	op.with(func() {
		if got := string(op.completes[id]); got != "3" {
			t.Errorf("result %q, want 3", got)
		}
		if len(op.registers) != 2 {
			t.Errorf("registered %d times, want 2", len(op.registers))
		}
	})
	if n := op.reports(id); n != 2 {
		t.Errorf("sent %d times, want 2", n)
	}
}

func TestAReportWhoseAnswerIsLostIsSettledByTheRepeat(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	op.inject("complete", 1, fault{drop: true}) // recorded, then the connection closes
	id := op.enqueue("add", `{"a":1,"b":2}`)
	start(t, w)
	op.settledAfter(t, id)
	if n := op.reports(id); n != 2 {
		t.Errorf("sent %d times, want 2 (the repeat is answered 409)", n)
	}
	op.with(func() {
		if got := string(op.completes[id]); got != "3" {
			t.Errorf("result %q, want 3", got)
		}
	})
}
