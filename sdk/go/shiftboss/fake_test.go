package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOperator is an in-memory operator speaking the worker protocol.
type fakeOperator struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	queue      []Assignment
	registers  []RegisterRequest
	claims     []ClaimRequest
	heartbeats []HeartbeatRequest
	progress   map[string][]ProgressReport
	completes  map[string]json.RawMessage
	fails      map[string]FailReport
	reports    map[string]int       // complete/fail requests per attempt
	commands   []Command            // sent with the next heartbeat answer
	reportErr  map[string]int       // status to answer reports of an attempt with
	claimErr   []int                // statuses to answer the next claims with
	registerSt int                  // status to answer registrations with (0: 200)
	raw        map[string][]string  // the JSON keys of the last request per action
	attempts   map[string]time.Time // when each attempt was claimed
}

func newFakeOperator(t *testing.T) *fakeOperator {
	op := &fakeOperator{
		t:         t,
		progress:  map[string][]ProgressReport{},
		completes: map[string]json.RawMessage{},
		fails:     map[string]FailReport{},
		reports:   map[string]int{},
		reportErr: map[string]int{},
		raw:       map[string][]string{},
		attempts:  map[string]time.Time{},
	}
	op.srv = httptest.NewServer(http.HandlerFunc(op.serve))
	t.Cleanup(op.srv.Close)
	return op
}

func (op *fakeOperator) enqueue(skill string, params string) string {
	op.mu.Lock()
	defer op.mu.Unlock()
	n := len(op.queue) + len(op.attempts) + 1
	id := "uid-" + string(rune('a'+n%26)) + strings.Repeat("x", n/26) + ".1"
	op.queue = append(op.queue, Assignment{
		AttemptID:    id,
		Job:          JobRef{Namespace: "ns", Name: "job-" + id, UID: strings.TrimSuffix(id, ".1")},
		Attempt:      1,
		Skill:        skill,
		Params:       json.RawMessage(params),
		LeaseSeconds: 5,
	})
	return id
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorResponse{Error: ErrorDetail{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// decodeStrict decodes the body into v, refusing unknown fields like the operator.
func (op *fakeOperator) decodeStrict(r *http.Request, action string, v any) bool {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		return false
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	op.raw[action] = keys
	data, _ := json.Marshal(raw)
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

func (op *fakeOperator) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		writeError(w, 401, "unauthenticated", "bad token")
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	if len(parts) == 2 && parts[0] == "workers" && parts[1] == "register" {
		var req RegisterRequest
		if !op.decodeStrict(r, "register", &req) {
			writeError(w, 422, "invalid", "bad register")
			return
		}
		if op.registerSt != 0 {
			writeError(w, op.registerSt, "wrong_pool", "refused")
			return
		}
		op.registers = append(op.registers, req)
		writeJSON(w, RegisterResponse{WorkerID: req.WorkerID, HeartbeatIntervalSeconds: 0.02, LeaseSeconds: 5})
		return
	}
	if len(parts) != 3 {
		writeError(w, 404, "not_found", r.URL.Path)
		return
	}
	id, action := parts[1], parts[2]
	switch parts[0] + "/" + action {
	case "workers/claim":
		var req ClaimRequest
		if !op.decodeStrict(r, "claim", &req) {
			writeError(w, 422, "invalid", "bad claim")
			return
		}
		op.claims = append(op.claims, req)
		if len(op.claimErr) > 0 {
			status := op.claimErr[0]
			op.claimErr = op.claimErr[1:]
			code := "unavailable"
			if status == 404 {
				code = CodeWorkerNotRegistered
			}
			writeError(w, status, code, "claim refused")
			return
		}
		n := min(req.MaxAttempts, len(op.queue))
		out := ClaimResponse{Assignments: append([]Assignment{}, op.queue[:n]...)}
		op.queue = op.queue[n:]
		for _, a := range out.Assignments {
			op.attempts[a.AttemptID] = time.Now()
		}
		writeJSON(w, out)
	case "workers/heartbeat":
		var req HeartbeatRequest
		if !op.decodeStrict(r, "heartbeat", &req) {
			writeError(w, 422, "invalid", "bad heartbeat")
			return
		}
		op.heartbeats = append(op.heartbeats, req)
		out := HeartbeatResponse{Commands: op.commands}
		op.commands = nil
		writeJSON(w, out)
	case "attempts/progress":
		var req ProgressReport
		if !op.decodeStrict(r, "progress", &req) {
			writeError(w, 422, "invalid", "bad progress")
			return
		}
		op.progress[id] = append(op.progress[id], req)
		writeJSON(w, Ack{OK: true})
	case "attempts/complete", "attempts/fail":
		op.reports[id]++
		if status := op.reportErr[id]; status != 0 {
			writeError(w, status, "attempt_not_current", "too late")
			return
		}
		if action == "complete" {
			var req CompleteReport
			if !op.decodeStrict(r, "complete", &req) {
				writeError(w, 422, "invalid", "bad complete")
				return
			}
			op.completes[id] = req.Result
		} else {
			var req FailReport
			if !op.decodeStrict(r, "fail", &req) {
				writeError(w, 422, "invalid", "bad fail")
				return
			}
			op.fails[id] = req
		}
		writeJSON(w, Ack{OK: true})
	default:
		writeError(w, 404, "not_found", r.URL.Path)
	}
}

// with runs f with the operator's lock held.
func (op *fakeOperator) with(f func()) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f()
}

func (op *fakeOperator) command(c Command) { op.with(func() { op.commands = append(op.commands, c) }) }

func testConfig(url string) Config {
	return Config{
		OperatorURL:  url,
		Pool:         "pool",
		WorkerID:     "w-1",
		TokenFile:    "/unused",
		Concurrency:  1,
		DrainTimeout: 5 * time.Second,
		ClaimWait:    0,
	}
}

// newTestWorker is a Worker for op with short timings.
func newTestWorker(op *fakeOperator, cfg Config) *Worker {
	w := NewWorker(cfg)
	w.Client = testClient(op.srv.URL)
	if !testing.Verbose() {
		w.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w.retryInitial = 5 * time.Millisecond
	w.retryMax = 20 * time.Millisecond
	w.minClaimInterval = 5 * time.Millisecond
	w.shutdownGrace = 2 * time.Second
	w.drainReportBudget = time.Second
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
