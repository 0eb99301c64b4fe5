package shiftboss

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

type addParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

func add(_ context.Context, job *Job) (any, error) {
	var p addParams
	if err := job.Decode(&p); err != nil {
		return nil, err
	}
	if err := job.Progress(50, "adding"); err != nil {
		return nil, err
	}
	return p.A + p.B, nil
}

const addSchema = `{"type":"object","required":["a","b"]}`

func TestWorkerRunsAJobEndToEnd(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	id := op.enqueue("add", `{"a":2,"b":3}`)
	stop, _ := start(t, w)
	eventually(t, "the result", func() (ok bool) {
		op.with(func() { ok = op.completes[id] != nil })
		return ok
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	op.with(func() {
		if got := string(op.completes[id]); got != "5" {
			t.Errorf("result = %s, want 5", got)
		}
		if got := op.progress[id]; len(got) != 1 || got[0] != (ProgressReport{50, "adding"}) {
			t.Errorf("progress = %+v", got)
		}
		reg := op.registers[0]
		if reg.Runtime != "go" || reg.Pool != "pool" || reg.WorkerID != "w-1" || reg.Capacity != 1 ||
			len(reg.Skills) != 1 || reg.Skills[0].Name != "add" || string(reg.Skills[0].InputSchema) != addSchema {
			t.Errorf("registration = %+v", reg)
		}
		if len(op.heartbeats) == 0 || !op.heartbeats[len(op.heartbeats)-1].Draining {
			t.Errorf("no draining heartbeat at shutdown: %+v", op.heartbeats)
		}
	})
}

func TestWorkerReportsHandlerErrors(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	w.Handle("fatal", func(context.Context, *Job) (any, error) {
		return nil, Fatal(fmt.Errorf("wrapped: %w", quotaError{}))
	}, nil)
	w.Handle("flaky", func(context.Context, *Job) (any, error) { return nil, &myError{} }, nil)
	w.Handle("panics", func(context.Context, *Job) (any, error) { panic("boom") }, nil)
	w.Handle("unjsonable", func(context.Context, *Job) (any, error) { return func() {}, nil }, nil)
	w.Handle("huge", func(context.Context, *Job) (any, error) {
		return string(make([]byte, MaxInlineResultBytes)), nil
	}, nil)
	want := map[string]FailReport{
		op.enqueue("add", `{"a":"x","b":1}`): {ErrorType: "InvalidParams", Retryable: false},
		op.enqueue("fatal", `{}`):            {ErrorType: "QuotaExceeded", Retryable: false},
		op.enqueue("flaky", `{}`):            {ErrorType: "myError", Retryable: true},
		op.enqueue("panics", `{}`):           {ErrorType: "Panic", Retryable: true},
		op.enqueue("unknown", `{}`):          {ErrorType: "UnknownSkill", Retryable: false},
		op.enqueue("unjsonable", `{}`):       {ErrorType: "InvalidResult", Retryable: false},
		op.enqueue("huge", `{}`):             {ErrorType: "ResultTooLarge", Retryable: false},
	}
	start(t, w)
	eventually(t, "every failure", func() (ok bool) {
		op.with(func() { ok = len(op.fails) == len(want) })
		return ok
	})
	op.with(func() {
		for id, w := range want {
			got := op.fails[id]
			if got.ErrorType != w.ErrorType || got.Retryable != w.Retryable || got.Message == "" {
				t.Errorf("%s: got %+v, want %+v", id, got, w)
			}
		}
	})
}

func TestWorkerRespectsConcurrency(t *testing.T) {
	op := newFakeOperator(t)
	cfg := testConfig(op.url)
	cfg.Concurrency = 3
	w := newTestWorker(op, cfg)
	var now, peak atomic.Int32
	w.Handle("slow", func(ctx context.Context, _ *Job) (any, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		return "ok", nil
	}, nil)
	var ids []string
	for range 10 {
		ids = append(ids, op.enqueue("slow", `{}`))
	}
	start(t, w)
	eventually(t, "all jobs", func() (ok bool) {
		op.with(func() { ok = len(op.completes) == len(ids) })
		return ok
	})
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want 3", p)
	}
	op.with(func() {
		if len(op.fails) != 0 {
			t.Errorf("failures: %+v", op.fails)
		}
		for _, c := range op.claims {
			if c.MaxAttempts < 1 || c.MaxAttempts > 3 {
				t.Errorf("claimed max_attempts=%d with 3 slots", c.MaxAttempts)
			}
		}
	})
}

func TestWorkerRegistersAgainWhenForgotten(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	op.inject("claim", 1, fault{status: 404, code: CodeWorkerNotRegistered})
	id := op.enqueue("add", `{"a":1,"b":2}`)
	start(t, w)
	eventually(t, "the job", func() (ok bool) {
		op.with(func() { ok = op.completes[id] != nil })
		return ok
	})
	op.with(func() {
		if len(op.registers) != 2 {
			t.Errorf("registered %d times, want 2", len(op.registers))
		}
	})
}

func TestWorkerRetriesClaimsThroughOutages(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.url))
	w.Client.Retries = 0
	w.Handle("add", add, addSchema)
	op.inject("claim", 3, fault{status: 503})
	id := op.enqueue("add", `{"a":1,"b":2}`)
	start(t, w)
	eventually(t, "the job", func() (ok bool) {
		op.with(func() { ok = op.completes[id] != nil })
		return ok
	})
}

func TestRunReturnsARefusedRegistration(t *testing.T) {
	op := newFakeOperator(t)
	op.always("register", fault{status: 403, code: "wrong_pool"})
	w := newTestWorker(op, testConfig(op.url))
	w.Handle("add", add, addSchema)
	err := w.Run(t.Context())
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if err := w.Run(t.Context()); err == nil {
		t.Error("a second Run was allowed")
	}
}
