package shiftboss

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOperator is an in-memory operator speaking the worker protocol the way the real
// one does (leases held per attempt, claim replay by request id, assign for a held
// attempt a heartbeat did not list, 409 for a report of an attempt not held), and
// able to fail the way a real one does: answer any status, process a request and lose
// the reply, hang until the client gives up, refuse connections (down/up).
type fakeOperator struct {
	t    *testing.T
	addr string // host:port, the same across down and up
	url  string

	mu         sync.Mutex
	server     *http.Server // nil while down
	session    RegisterResponse
	nextID     int
	queue      []Assignment
	held       map[string]Assignment // leases held for the worker: assigned, not yet reported
	replays    map[string][]string   // claim request id -> the attempt ids it was given
	noReplay   bool                  // forget request ids, as an operator that restarted
	overAssign bool                  // answer claims with one attempt more than asked
	faults     map[string][]fault    // per action, used up in order
	sticky     map[string]fault      // per action, until cleared
	commands   []Command             // sent with the next heartbeat answer

	requests   []request // every request, faulty or not, in arrival order
	registers  []RegisterRequest
	claims     []ClaimRequest
	heartbeats []HeartbeatRequest
	progress   map[string][]ProgressReport
	completes  map[string]json.RawMessage
	fails      map[string]FailReport
	releases   map[string]ReleaseReport
	raw        map[string][]string // the JSON keys of the last request per action
	hangs      []time.Duration     // how long each hung request waited for the client to give up
}

// fault is what the fake does instead of answering normally.
type fault struct {
	status int           // answer this status without processing...
	code   string        // ...with this error code
	drop   bool          // process the request, then close the connection without an answer
	hang   bool          // hold the request, unprocessed, until the client gives up
	late   bool          // process the request, then hold the answer until the client gives up
	delay  time.Duration // wait this long, then process the request (a long poll that finds work late)
}

type request struct {
	action string // register, claim, heartbeat, progress, complete, fail, release
	id     string // the worker or attempt id in the path
	at     time.Time
	body   []byte
}

func newFakeOperator(t *testing.T) *fakeOperator {
	grace := 0.05
	op := &fakeOperator{
		t:         t,
		session:   RegisterResponse{HeartbeatIntervalSeconds: 0.02, LeaseSeconds: 5, CancelGraceSeconds: &grace},
		held:      map[string]Assignment{},
		replays:   map[string][]string{},
		faults:    map[string][]fault{},
		sticky:    map[string]fault{},
		progress:  map[string][]ProgressReport{},
		completes: map[string]json.RawMessage{},
		fails:     map[string]FailReport{},
		releases:  map[string]ReleaseReport{},
		raw:       map[string][]string{},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	op.addr = l.Addr().String()
	op.url = "http://" + op.addr
	op.serveOn(l)
	t.Cleanup(op.down)
	return op
}

func (op *fakeOperator) serveOn(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(op.serve)}
	op.with(func() { op.server = srv })
	go func() { _ = srv.Serve(l) }()
}

// down closes the listener and every connection: connections are refused until up.
func (op *fakeOperator) down() {
	var srv *http.Server
	op.with(func() { srv, op.server = op.server, nil })
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (op *fakeOperator) up() {
	op.t.Helper()
	l, err := net.Listen("tcp", op.addr)
	if err != nil {
		op.t.Fatalf("listening again on %s: %v", op.addr, err)
	}
	op.serveOn(l)
}

// inject makes the next n requests of action meet f.
func (op *fakeOperator) inject(action string, n int, f fault) {
	op.with(func() {
		for range n {
			op.faults[action] = append(op.faults[action], f)
		}
	})
}

// always makes every request of action meet f until clear.
func (op *fakeOperator) always(action string, f fault) { op.with(func() { op.sticky[action] = f }) }
func (op *fakeOperator) clear(action string)           { op.with(func() { delete(op.sticky, action) }) }

// enqueue queues an attempt of skill and returns its id.
func (op *fakeOperator) enqueue(skill, params string) string {
	var id string
	op.with(func() {
		a := op.assignment(skill, params)
		op.queue = append(op.queue, a)
		id = a.AttemptID
	})
	return id
}

// assignLater holds a lease for the worker on an attempt it never claimed (a claim
// answer lost for good): the next heartbeat answer hands it over with assign.
func (op *fakeOperator) assignLater(skill, params string) string {
	var id string
	op.with(func() {
		a := op.assignment(skill, params)
		op.held[a.AttemptID] = a
		id = a.AttemptID
	})
	return id
}

func (op *fakeOperator) assignment(skill, params string) Assignment {
	op.nextID++
	uid := fmt.Sprintf("uid-%d", op.nextID)
	return Assignment{
		AttemptID:    uid + ".1",
		Job:          JobRef{Namespace: "ns", Name: "job-" + uid, UID: uid},
		Attempt:      1,
		Skill:        skill,
		Params:       json.RawMessage(params),
		LeaseSeconds: op.session.LeaseSeconds,
	}
}

// command sends c with the next heartbeat answer; an abandoned attempt's lease is dropped.
func (op *fakeOperator) command(c Command) {
	op.with(func() {
		op.commands = append(op.commands, c)
		if c.Type == CommandAbandon {
			delete(op.held, c.AttemptID)
		}
	})
}

// with runs f with the operator's lock held.
func (op *fakeOperator) with(f func()) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f()
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

// route splits /v1/workers/register, /v1/workers/{id}/{action}, /v1/attempts/{id}/{action}.
func route(path string) (action, id string) {
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "workers" && parts[1] == "register":
		return "register", ""
	case len(parts) == 3 && (parts[0] == "workers" || parts[0] == "attempts"):
		return parts[2], parts[1]
	}
	return "", ""
}

func (op *fakeOperator) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	action, id := route(r.URL.Path)
	var f fault
	var faulty bool
	op.with(func() {
		op.requests = append(op.requests, request{action, id, time.Now(), body})
		if queued := op.faults[action]; len(queued) > 0 {
			f, faulty, op.faults[action] = queued[0], true, queued[1:]
		} else {
			f, faulty = op.sticky[action]
		}
	})
	switch {
	case faulty && f.hang:
		began := time.Now()
		<-r.Context().Done()
		op.with(func() { op.hangs = append(op.hangs, time.Since(began)) })
		return
	case faulty && f.status != 0:
		writeError(w, f.status, orDefault(f.code, "injected"), "an injected fault")
		return
	case faulty && f.delay > 0:
		time.Sleep(f.delay)
	}
	rec := httptest.NewRecorder()
	if r.Header.Get("Authorization") != "Bearer tok" {
		writeError(rec, 401, "unauthenticated", "bad token")
	} else {
		op.with(func() { op.handle(rec, action, id, body) })
	}
	if faulty && f.late {
		<-r.Context().Done()
		return
	}
	if faulty && f.drop { // processed, but the answer is lost on the wire
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// decodeStrict decodes body into v, refusing unknown fields like the operator, and
// remembers the JSON keys sent.
func (op *fakeOperator) decodeStrict(action string, body []byte, v any) bool {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return false
	}
	op.raw[action] = nil
	for k := range raw {
		op.raw[action] = append(op.raw[action], k)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

// handle answers a request; op.mu is held.
func (op *fakeOperator) handle(w http.ResponseWriter, action, id string, body []byte) {
	switch action {
	case "register":
		var req RegisterRequest
		if !op.decodeStrict(action, body, &req) {
			writeError(w, 422, "invalid", "bad register")
			return
		}
		op.registers = append(op.registers, req)
		resp := op.session
		resp.WorkerID = req.WorkerID
		writeJSON(w, resp)
	case "claim":
		var req ClaimRequest
		if !op.decodeStrict(action, body, &req) {
			writeError(w, 422, "invalid", "bad claim")
			return
		}
		op.claims = append(op.claims, req)
		writeJSON(w, ClaimResponse{Assignments: op.claim(req)})
	case "heartbeat":
		var req HeartbeatRequest
		if !op.decodeStrict(action, body, &req) {
			writeError(w, 422, "invalid", "bad heartbeat")
			return
		}
		op.heartbeats = append(op.heartbeats, req)
		out := HeartbeatResponse{Commands: op.commands}
		op.commands = nil
		for _, a := range op.held {
			if !slices.Contains(req.AttemptIDs, a.AttemptID) {
				out.Commands = append(out.Commands, Command{Type: CommandAssign, Assignment: &a})
			}
		}
		writeJSON(w, out)
	case "progress":
		var req ProgressReport
		if !op.decodeStrict(action, body, &req) {
			writeError(w, 422, "invalid", "bad progress")
			return
		}
		op.progress[id] = append(op.progress[id], req)
		writeJSON(w, Ack{OK: true})
	case "complete", "fail", "release":
		if _, ok := op.held[id]; !ok {
			writeError(w, 409, "attempt_not_current", "attempt "+id+" is not current")
			return
		}
		var ok bool
		switch action {
		case "complete":
			var req CompleteReport
			if ok = op.decodeStrict(action, body, &req); ok {
				op.completes[id] = req.Result
			}
		case "fail":
			var req FailReport
			if ok = op.decodeStrict(action, body, &req); ok {
				op.fails[id] = req
			}
		default:
			var req ReleaseReport
			if ok = op.decodeStrict(action, body, &req); ok {
				op.releases[id] = req
			}
		}
		if !ok {
			writeError(w, 422, "invalid", "bad "+action)
			return
		}
		delete(op.held, id)
		writeJSON(w, Ack{OK: true})
	default:
		writeError(w, 404, "not_found", "no route")
	}
}

// claim answers a claim: a repeated request id gets the attempts it was given that
// are still held; a new one takes up to max_attempts from the queue.
func (op *fakeOperator) claim(req ClaimRequest) []Assignment {
	out := []Assignment{}
	if ids, seen := op.replays[req.RequestID]; seen && req.RequestID != "" && !op.noReplay {
		for _, id := range ids {
			if a, ok := op.held[id]; ok {
				out = append(out, a)
			}
		}
		return out
	}
	n := req.MaxAttempts
	if op.overAssign {
		n++
	}
	n = min(n, len(op.queue))
	out = append(out, op.queue[:n]...)
	op.queue = op.queue[n:]
	ids := make([]string, 0, n)
	for _, a := range out {
		op.held[a.AttemptID] = a
		ids = append(ids, a.AttemptID)
	}
	op.replays[req.RequestID] = ids
	return out
}
