package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	w := newTestWorker(op, testConfig(op.srv.URL))
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
	w := newTestWorker(op, testConfig(op.srv.URL))
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

func TestWorkerDropsAnAttemptOn409(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	w.Handle("add", add, addSchema)
	late := op.enqueue("add", `{"a":1,"b":1}`)
	next := op.enqueue("add", `{"a":2,"b":2}`)
	op.with(func() { op.reportErr[late] = 409 })
	start(t, w)
	eventually(t, "the next job", func() (ok bool) {
		op.with(func() { ok = op.completes[next] != nil })
		return ok
	})
	time.Sleep(50 * time.Millisecond) // room for a wrong retry
	op.with(func() {
		if n := op.reports[late]; n != 1 {
			t.Errorf("the refused outcome was sent %d times, want once", n)
		}
		if _, failed := op.fails[late]; failed {
			t.Error("a fail was sent after the 409")
		}
	})
	if ids := w.runningIDs(); len(ids) != 0 {
		t.Errorf("still heartbeating %v", ids)
	}
}

func TestWorkerCancelCommandCancelsTheHandler(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	running := make(chan struct{})
	w.Handle("wait", func(ctx context.Context, _ *Job) (any, error) {
		close(running)
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	id := op.enqueue("wait", `{}`)
	start(t, w)
	<-running
	eventually(t, "a heartbeat with the attempt", func() (ok bool) {
		op.with(func() {
			ok = len(op.heartbeats) > 0 && slices.Contains(op.heartbeats[len(op.heartbeats)-1].AttemptIDs, id)
		})
		return ok
	})
	op.command(Command{Type: CommandCancel, AttemptID: id, Reason: "the job was cancelled by alice"})
	eventually(t, "the cancellation report", func() (ok bool) {
		op.with(func() { _, ok = op.fails[id] })
		return ok
	})
	op.with(func() {
		want := FailReport{ErrorType: "Cancelled", Message: "the job was cancelled by alice", Retryable: false}
		if got := op.fails[id]; got.ErrorType != want.ErrorType || got.Message != want.Message || got.Retryable {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

func TestWorkerAbandonCommandReportsNothing(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	stopped := make(chan struct{})
	w.Handle("wait", func(ctx context.Context, _ *Job) (any, error) {
		<-ctx.Done()
		close(stopped)
		return nil, ctx.Err()
	}, nil)
	id := op.enqueue("wait", `{}`)
	start(t, w)
	eventually(t, "the attempt to run", func() bool { return w.attempt(id) != nil })
	op.command(Command{Type: CommandAbandon, AttemptID: id, Reason: "lease lost"})
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	eventually(t, "the slot to be freed", func() bool { return w.running() == 0 })
	time.Sleep(30 * time.Millisecond)
	op.with(func() {
		if n := op.reports[id]; n != 0 {
			t.Errorf("reported %d times after abandon", n)
		}
	})
}

func TestWorkerRespectsConcurrency(t *testing.T) {
	op := newFakeOperator(t)
	cfg := testConfig(op.srv.URL)
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

func TestWorkerHandsBackExtraAssignments(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	w.Handle("block", func(ctx context.Context, _ *Job) (any, error) { <-block; return nil, nil }, nil)
	first := op.enqueue("block", `{}`)
	w.mu.Lock()
	w.attempts = map[string]*attempt{}
	w.mu.Unlock()
	w.Client = testClient(op.srv.URL)
	w.start(t.Context(), Assignment{AttemptID: first, Skill: "block", Params: json.RawMessage(`{}`)})
	w.start(t.Context(), Assignment{AttemptID: "extra.1", Skill: "block", Params: json.RawMessage(`{}`)})
	eventually(t, "the hand-back", func() (ok bool) {
		op.with(func() { ok = op.fails["extra.1"].ErrorType == "WorkerOverCapacity" && op.fails["extra.1"].Retryable })
		return ok
	})
}

func TestWorkerRegistersAgainWhenForgotten(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	w.Handle("add", add, addSchema)
	op.with(func() { op.claimErr = []int{404} })
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
	w := newTestWorker(op, testConfig(op.srv.URL))
	w.Client.Retries = 0
	w.Handle("add", add, addSchema)
	op.with(func() { op.claimErr = []int{503, 503, 503} })
	id := op.enqueue("add", `{"a":1,"b":2}`)
	start(t, w)
	eventually(t, "the job", func() (ok bool) {
		op.with(func() { ok = op.completes[id] != nil })
		return ok
	})
}

func TestRunReturnsARefusedRegistration(t *testing.T) {
	op := newFakeOperator(t)
	op.with(func() { op.registerSt = 403 })
	w := newTestWorker(op, testConfig(op.srv.URL))
	w.Handle("add", add, addSchema)
	err := w.Run(t.Context())
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if err := w.Run(t.Context()); err == nil {
		t.Error("a second Run was allowed")
	}
}

func TestDrainCommandEndsRun(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	w.Handle("add", add, addSchema)
	op.command(Command{Type: CommandDrain, Reason: "scale down"})
	stop, done := start(t, w)
	select {
	case <-done:
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a drain command")
	}
}

func TestShutdownFinishesRunningAttempts(t *testing.T) {
	op := newFakeOperator(t)
	w := newTestWorker(op, testConfig(op.srv.URL))
	running := make(chan struct{})
	w.Handle("slow", func(ctx context.Context, _ *Job) (any, error) {
		close(running)
		time.Sleep(100 * time.Millisecond)
		return "done", ctx.Err() // ctx is not cancelled by the shutdown itself
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

func TestShutdownFailsLeftoversWithWorkerShutdown(t *testing.T) {
	op := newFakeOperator(t)
	cfg := testConfig(op.srv.URL)
	cfg.Concurrency = 2
	cfg.DrainTimeout = 50 * time.Millisecond
	w := newTestWorker(op, cfg)
	w.shutdownGrace = 100 * time.Millisecond
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var started atomic.Int32
	w.Handle("polite", func(ctx context.Context, _ *Job) (any, error) {
		started.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	w.Handle("stubborn", func(context.Context, *Job) (any, error) {
		started.Add(1)
		<-stuck // ignores its context
		return "too late", nil
	}, nil)
	polite := op.enqueue("polite", `{}`)
	stubborn := op.enqueue("stubborn", `{}`)
	stop, _ := start(t, w)
	eventually(t, "both handlers", func() bool { return started.Load() == 2 })
	began := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	op.with(func() {
		for _, id := range []string{polite, stubborn} {
			got := op.fails[id]
			if got.ErrorType != "WorkerShutdown" || !got.Retryable || op.reports[id] != 1 {
				t.Errorf("%s: %+v (%d reports), want one retryable WorkerShutdown", id, got, op.reports[id])
			}
		}
		if len(op.completes) != 0 {
			t.Errorf("completed %v", op.completes)
		}
	})
}
