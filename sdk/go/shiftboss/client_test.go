package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientSpeaksTheProtocolsFieldNames(t *testing.T) {
	op := newFakeOperator(t)
	c := testClient(op.url)
	ctx := t.Context()
	reg, err := c.Register(ctx, &RegisterRequest{
		Pool: "p", WorkerID: "w-1", Capacity: 2, Version: "1", Runtime: "go",
		Skills: []SkillSpec{{Name: "add", InputSchema: json.RawMessage(`{"type":"object"}`)}},
	})
	if err != nil || reg.WorkerID != "w-1" || reg.HeartbeatIntervalSeconds != 0.02 || reg.LeaseSeconds != 5 {
		t.Fatalf("Register = %+v, %v", reg, err)
	}
	id := op.enqueue("add", `{"a":1}`)
	failed, released := op.enqueue("add", `{"a":2}`), op.enqueue("add", `{"a":3}`)
	claim, err := c.Claim(ctx, "w-1", &ClaimRequest{MaxAttempts: 3, WaitSeconds: 0, RequestID: "r-1"})
	if err != nil || len(claim.Assignments) != 3 || claim.Assignments[0].AttemptID != id ||
		string(claim.Assignments[0].Params) != `{"a":1}` || claim.Assignments[0].Job.UID == "" {
		t.Fatalf("Claim = %+v, %v", claim, err)
	}
	if _, err := c.Heartbeat(ctx, "w-1", &HeartbeatRequest{AttemptIDs: []string{id, failed, released}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Progress(ctx, id, &ProgressReport{Percent: 50, Message: "half"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(ctx, id, &CompleteReport{}); err != nil {
		t.Fatal(err)
	}
	after := 1.5
	if err := c.Fail(ctx, failed, &FailReport{ErrorType: "E", Message: "m", Retryable: true, RetryAfterSeconds: &after}); err != nil {
		t.Fatal(err)
	}
	if err := c.Release(ctx, released, &ReleaseReport{Reason: "shutting down"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(ctx, id, &CompleteReport{}); !errors.Is(err, ErrNotCurrent) {
		t.Errorf("a second report = %v, want ErrNotCurrent", err)
	}
	want := map[string][]string{
		"register":  {"capacity", "pool", "runtime", "skills", "version", "worker_id"},
		"claim":     {"max_attempts", "request_id", "wait_seconds"},
		"heartbeat": {"attempt_ids", "draining"},
		"progress":  {"message", "percent"},
		"complete":  {"result"},
		"fail":      {"error_type", "message", "retry_after_seconds", "retryable"},
		"release":   {"reason"},
	}
	op.with(func() {
		for action, keys := range want {
			got := slices.Sorted(slices.Values(op.raw[action]))
			if !slices.Equal(got, keys) {
				t.Errorf("%s sent keys %v, want %v", action, got, keys)
			}
		}
		if got := string(op.completes[id]); got != "null" {
			t.Errorf("complete without a result sent %s, want null", got)
		}
		if got := op.fails[failed]; *got.RetryAfterSeconds != 1.5 || got.ErrorType != "E" {
			t.Errorf("fail = %+v", got)
		}
		if got := op.releases[released]; got.Reason != "shutting down" {
			t.Errorf("release = %+v", got)
		}
		if got := op.registers[0].Skills[0]; got.Name != "add" || string(got.InputSchema) != `{"type":"object"}` {
			t.Errorf("skill = %+v", got)
		}
	})
	if _, err := c.Heartbeat(ctx, "w-1", &HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	if keys := op.raw["heartbeat"]; !slices.Contains(keys, "attempt_ids") {
		t.Errorf("heartbeat without attempts sent keys %v", keys)
	}
	var last request
	op.with(func() { last = op.requests[len(op.requests)-1] })
	if !strings.Contains(string(last.body), `"attempt_ids":[]`) {
		t.Errorf("heartbeat without attempts sent %s, want attempt_ids: []", last.body)
	}
}

func TestClientDecodesTheNewAnswerFields(t *testing.T) {
	op := newFakeOperator(t)
	grace := 7.5
	op.with(func() { op.session.CancelGraceSeconds = &grace })
	c := testClient(op.url)
	reg, err := c.Register(t.Context(), &RegisterRequest{Pool: "p", WorkerID: "w-1", Capacity: 1})
	if err != nil || reg.CancelGraceSeconds == nil || *reg.CancelGraceSeconds != 7.5 {
		t.Fatalf("Register = %+v, %v", reg, err)
	}
	op.assignLater("add", `{"a":1}`)
	op.command(Command{Type: CommandCancel, AttemptID: "x.1", Reason: "r", GraceSeconds: &grace})
	hb, err := c.Heartbeat(t.Context(), "w-1", &HeartbeatRequest{})
	if err != nil || len(hb.Commands) != 2 {
		t.Fatalf("Heartbeat = %+v, %v", hb, err)
	}
	if got := hb.Commands[0]; got.Type != CommandCancel || *got.GraceSeconds != 7.5 || got.Reason != "r" {
		t.Errorf("cancel = %+v", got)
	}
	if got := hb.Commands[1]; got.Type != CommandAssign || got.Assignment == nil || got.Assignment.AttemptID == "" {
		t.Errorf("assign = %+v", got)
	}
}

// answering serves the given status and body, counting requests.
func answering(t *testing.T, statuses []int, body string) (*Client, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := statuses[min(i, len(statuses)-1)]
		if status == 200 {
			writeJSON(w, Ack{OK: true})
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return testClient(srv.URL), &n
}

func TestClientTypedErrors(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		sentinel error // nil: none of them
		code     string
		field    string
	}{
		{409, `{"error":{"code":"attempt_not_current","message":"late"}}`, ErrNotCurrent, "attempt_not_current", ""},
		{401, `{"error":{"code":"unauthenticated","message":"bad token"}}`, ErrUnauthorized, "unauthenticated", ""},
		{403, `{"error":{"code":"wrong_pool","message":"other pool"}}`, ErrUnauthorized, "wrong_pool", ""},
		{404, `{"error":{"code":"worker_not_registered","message":"register again"}}`, ErrWorkerNotRegistered, "worker_not_registered", ""},
		{404, `{"error":{"code":"unknown_attempt","message":"who?"}}`, ErrUnknownAttempt, "unknown_attempt", ""},
		{422, `{"error":{"code":"invalid","message":"too long","field":"message"}}`, nil, "invalid", "message"},
		{400, `not json`, nil, "", ""},
	}
	sentinels := []error{ErrNotCurrent, ErrUnauthorized, ErrWorkerNotRegistered, ErrUnknownAttempt, ErrUnavailable, ErrOperatorAbsent}
	for _, tc := range cases {
		c, n := answering(t, []int{tc.status}, tc.body)
		err := c.Fail(t.Context(), "a.1", &FailReport{ErrorType: "E"})
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("%d: %v is not a *ProtocolError", tc.status, err)
		}
		if pe.Status != tc.status || pe.Code != tc.code || pe.Field != tc.field || pe.Message == "" {
			t.Errorf("%d: got %+v", tc.status, pe)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) != (s == tc.sentinel) {
				t.Errorf("%d %s: errors.Is(err, %v) = %v", tc.status, tc.code, s, errors.Is(err, s))
			}
		}
		if n.Load() != 1 {
			t.Errorf("%d: sent %d times, want once (4xx is not retried)", tc.status, n.Load())
		}
	}
}

func TestClientRetries503And429ThenSucceeds(t *testing.T) {
	c, n := answering(t, []int{503, 429, 502, 200}, `{"error":{"code":"unavailable","message":"api server down"}}`)
	if err := c.Complete(t.Context(), "a.1", &CompleteReport{Result: json.RawMessage("1")}); err != nil {
		t.Fatalf("Complete = %v, want success after retries", err)
	}
	if n.Load() != 4 {
		t.Errorf("sent %d times, want 4", n.Load())
	}
}

func TestClientGivesUpAfterRetries(t *testing.T) {
	c, n := answering(t, []int{503}, `{"error":{"code":"unavailable","message":"down"}}`)
	err := c.Complete(t.Context(), "a.1", &CompleteReport{})
	var pe *ProtocolError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &pe) || pe.Status != 503 {
		t.Fatalf("err = %v, want ErrUnavailable wrapping the 503", err)
	}
	if int(n.Load()) != c.Retries+1 {
		t.Errorf("sent %d times, want %d", n.Load(), c.Retries+1)
	}
}

func TestClientRetriesTransportErrors(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 { // drop the connection without an answer
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		writeJSON(w, Ack{OK: true})
	}))
	defer srv.Close()
	c := testClient(srv.URL)
	if err := c.Fail(t.Context(), "a.1", &FailReport{ErrorType: "E"}); err != nil {
		t.Fatalf("Fail = %v, want success on the third try", err)
	}
	if n.Load() != 3 {
		t.Errorf("sent %d times, want 3", n.Load())
	}
}

func TestProgressAndHeartbeatAreNotRetried(t *testing.T) {
	c, n := answering(t, []int{503, 200}, "")
	if err := c.Progress(t.Context(), "a.1", &ProgressReport{Percent: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Progress = %v, want ErrUnavailable", err)
	}
	if n.Load() != 1 {
		t.Errorf("progress sent %d times, want 1", n.Load())
	}
	c, n = answering(t, []int{503, 200}, "")
	if _, err := c.Heartbeat(t.Context(), "w", &HeartbeatRequest{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Heartbeat = %v, want ErrUnavailable", err)
	}
	if n.Load() != 1 {
		t.Errorf("heartbeat sent %d times, want 1", n.Load())
	}
}

func TestOperatorAbsentIsConnectionRefusedOr503(t *testing.T) {
	refused := testClient("http://" + closedAddress(t))
	refused.Retries = 0
	_, err := refused.Heartbeat(t.Context(), "w", &HeartbeatRequest{})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrOperatorAbsent) {
		t.Errorf("connection refused: %v, want ErrOperatorAbsent", err)
	}
	for status, absent := range map[int]bool{503: true, 502: false, 500: false, 429: false} {
		c, _ := answering(t, []int{status}, "")
		_, err := c.Heartbeat(t.Context(), "w", &HeartbeatRequest{})
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrOperatorAbsent) != absent {
			t.Errorf("%d: %v, absent = %v, want %v", status, err, errors.Is(err, ErrOperatorAbsent), absent)
		}
	}
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices the client leave only once the body is read
		<-r.Context().Done()
	}))
	defer hung.Close()
	c := testClient(hung.URL)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Heartbeat(ctx, "w", &HeartbeatRequest{}); err == nil || errors.Is(err, ErrOperatorAbsent) {
		t.Errorf("a timeout: %v, want an error that is not ErrOperatorAbsent", err)
	}
}

// closedAddress is a loopback address nothing listens on.
func closedAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestClientStopsRetryingWhenCancelled(t *testing.T) {
	c, _ := answering(t, []int{503}, "")
	c.Retries, c.BackoffInitial, c.BackoffMax = 100, time.Second, time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Fail(ctx, "a.1", &FailReport{ErrorType: "E"})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestClientReadsTheTokenForEveryRequest(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		writeJSON(w, Ack{OK: true})
	}))
	defer srv.Close()
	cfg := Config{TokenFile: filepath.Join(t.TempDir(), "token")}
	c := testClient(srv.URL)
	c.Token = cfg.ReadToken
	if err := c.Fail(t.Context(), "a.1", &FailReport{ErrorType: "E"}); err == nil {
		t.Fatal("a missing token file was not an error")
	} else if !errors.Is(err, fs.ErrNotExist) && len(seen) != 0 {
		t.Fatalf("sent a request without a token: %v", err)
	}
	for _, tok := range []string{"one", "two"} {
		if err := os.WriteFile(cfg.TokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.Fail(t.Context(), "a.1", &FailReport{ErrorType: "E"}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(seen, []string{"Bearer one", "Bearer two"}) {
		t.Errorf("Authorization headers = %v", seen)
	}
}

func TestBackoffIsBoundedWithJitter(t *testing.T) {
	c := NewClient("http://x", nil)
	for try := range 40 {
		ceiling := min(c.BackoffMax, c.BackoffInitial<<min(try, 30))
		for range 20 {
			if d := c.backoff(try); d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", try, d, ceiling/2, ceiling)
			}
		}
	}
}

type quotaError struct{}

func (quotaError) Error() string     { return "over quota" }
func (quotaError) ErrorType() string { return "QuotaExceeded" }

type myError struct{}

func (*myError) Error() string { return "mine" }

func TestErrorType(t *testing.T) {
	_, statErr := os.Stat(filepath.Join(t.TempDir(), "nope"))
	cases := map[string]error{
		"Error":         errors.New("plain"),
		"PathError":     statErr,
		"QuotaExceeded": Fatal(quotaError{}),
		"myError":       Fatal(errors.Join(errors.New("x"), &myError{})),
		"InvalidParams": (&Job{Params: json.RawMessage(`{"a":"x"}`)}).Decode(&struct{ A int }{}),
	}
	for want, err := range cases {
		if got := errorType(err); got != want {
			t.Errorf("errorType(%v) = %q, want %q", err, got, want)
		}
	}
}
