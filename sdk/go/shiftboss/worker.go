package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// HandlerFunc runs one attempt. The result must be JSON-serialisable. Returning
// Fatal(err) fails the job without retry; any other error fails the attempt as
// retryable, with the error's short type name as error_type (see TypedError).
//
// When the worker stops the attempt (see Job.Stopping), job.Stopping() is closed
// first and ctx is cancelled after a grace period; a handler that returns a result
// even then has it reported.
type HandlerFunc func(ctx context.Context, job *Job) (any, error)

var skillNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

type skill struct {
	spec    SkillSpec
	handler HandlerFunc
}

// rememberedAttempts is how many attempt ids a worker remembers having taken up, so
// that it never starts one twice (the protocol asks for at least 1,024).
const rememberedAttempts = 4096

// Worker runs handlers for the attempts the operator assigns to it.
//
// Create it with NewWorker, register handlers with Handle, then call Run once.
type Worker struct {
	// Config is the worker's configuration (from ConfigFromEnv).
	Config Config
	// Client talks to the operator; nil means Config.NewClient().
	Client *Client
	// Logger receives the worker's log; nil means slog.Default().
	Logger *slog.Logger
	// Version is the application's version sent at registration (default: the SDK's).
	Version string

	skills  map[string]*skill
	order   []string
	t       timings
	started atomic.Bool

	drainCtx context.Context // Run's context: done once draining has begun
	bg       context.Context // outlives drainCtx: reports and heartbeats go on

	mu      sync.Mutex
	held    map[string]*attempt // listed in every heartbeat until the outcome is settled
	running map[string]*attempt // handlers that have not returned: the slots taken
	seen    *recentIDs          // attempts taken up here: none is started twice
	changed chan struct{}       // closed (and replaced) whenever held or running change
	session session             // what the last registration said

	registerMu sync.Mutex
}

// session is what the operator said at registration.
type session struct {
	interval     time.Duration // between heartbeats
	lease        time.Duration // a lease lasts this long after a heartbeat
	cancelGrace  time.Duration // a stopped handler's context is cancelled this much later
	registeredAt time.Time
}

// timings are the SDK's own waits; tests shorten them.
type timings struct {
	retryInitial, retryMax     time.Duration // register and claim retries
	minClaimInterval           time.Duration // an empty claim answered faster waits the rest
	outcomeInitial, outcomeMax time.Duration // outcome re-sends (the protocol's 0.5 s to 15 s)
	heartbeatTimeoutMin        time.Duration // a heartbeat gives up after one interval,
	heartbeatTimeoutMax        time.Duration // but within these bounds (the protocol's 1..10 s)
	stubbornWait               time.Duration // after the drain cancels a handler, how long it may take to return
	finalBeats                 int           // heartbeats at exit to hear of attempts still assigned
}

func defaultTimings() timings {
	return timings{
		retryInitial:        500 * time.Millisecond,
		retryMax:            10 * time.Second,
		minClaimInterval:    time.Second,
		outcomeInitial:      500 * time.Millisecond,
		outcomeMax:          15 * time.Second,
		heartbeatTimeoutMin: time.Second,
		heartbeatTimeoutMax: 10 * time.Second,
		stubbornWait:        time.Second,
		finalBeats:          3,
	}
}

// NewWorker returns a Worker for cfg with no handlers yet.
func NewWorker(cfg Config) *Worker {
	return &Worker{
		Config:  cfg,
		skills:  map[string]*skill{},
		t:       defaultTimings(),
		held:    map[string]*attempt{},
		running: map[string]*attempt{},
		seen:    newRecentIDs(rememberedAttempts),
		changed: make(chan struct{}),
		session: session{
			interval:    5 * time.Second,
			lease:       15 * time.Second,
			cancelGrace: seconds(DefaultCancelGraceSeconds),
		},
	}
}

// Handle registers handler for skill name. inputSchema is the JSON Schema of the
// params, which the operator checks before an attempt starts (params that break it
// fail the job as InvalidParams): a json.RawMessage, []byte or string of JSON, any
// other value marshalled to JSON, or nil for "any object".
//
// Handle panics on an invalid skill name or schema, a duplicate name, or when called
// after Run, like http.ServeMux.Handle.
func (w *Worker) Handle(name string, handler HandlerFunc, inputSchema any) {
	if w.started.Load() {
		panic("shiftboss: Handle called after Run")
	}
	if len(name) > 63 || !skillNameRE.MatchString(name) {
		panic(fmt.Sprintf("shiftboss: invalid skill name %q: use letters, digits, '_', '.', '-' (at most 63), starting with a letter or '_'", name))
	}
	if handler == nil {
		panic("shiftboss: nil handler for skill " + name)
	}
	if _, dup := w.skills[name]; dup {
		panic("shiftboss: skill " + name + " registered twice")
	}
	schema, err := schemaJSON(inputSchema)
	if err != nil {
		panic(fmt.Sprintf("shiftboss: the input schema of skill %s: %v", name, err))
	}
	w.skills[name] = &skill{spec: SkillSpec{Name: name, InputSchema: schema}, handler: handler}
	w.order = append(w.order, name)
}

func schemaJSON(schema any) (json.RawMessage, error) {
	var raw []byte
	switch s := schema.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = s
	case []byte:
		raw = s
	case string:
		raw = []byte(s)
	default:
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errors.New("it must be a JSON object")
	}
	return json.RawMessage(raw), nil
}

func (w *Worker) log() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

// Run registers, then claims and runs attempts until ctx is cancelled. Then it
// drains: no new claims; running attempts get Config.DrainTimeout to finish; those
// still running are asked to stop and released (their jobs are queued again, not
// counted as failures); and every outcome is delivered (or its Config.OutcomeRetry
// budget is spent) before Run returns nil. Handlers that ignore their context may
// still be running then; what they return is discarded.
//
// Run returns an error when the configuration is invalid or the operator refuses
// the registration (a bad token, an unknown pool: things a human must fix).
// A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("shiftboss: a Worker runs once; create a new one")
	}
	if err := w.Config.Validate(); err != nil {
		return err
	}
	if len(w.skills) == 0 {
		return errors.New("shiftboss: no handlers: call Handle before Run")
	}
	if w.Client == nil {
		client, err := w.Config.NewClient()
		if err != nil {
			return err
		}
		w.Client = client
	}
	w.drainCtx, w.bg = ctx, context.WithoutCancel(ctx)
	log := w.log().With("worker_id", w.Config.WorkerID)

	if err := w.registerUntilDone(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("registered", "operator", w.Config.OperatorURL, "pool", w.Config.Pool,
		"skills", len(w.skills), "concurrency", w.Config.Concurrency)

	hbCtx, stopHeartbeats := context.WithCancel(w.bg)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeatLoop(hbCtx)
	}()
	w.claimLoop()
	log.Info("draining: no new claims", "running", w.runningCount())
	w.drain()
	stopHeartbeats()
	<-hbDone
	w.finalHeartbeats()
	log.Info("worker stopped")
	return nil
}

func (w *Worker) draining() bool { return w.drainCtx.Err() != nil }

// touch wakes everything waiting in waitFor; call it with w.mu held.
func (w *Worker) touch() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitFor waits until cond (called with w.mu held) is true, timeout passes (< 0: no
// limit) or ctx is done; it says whether cond held.
func (w *Worker) waitFor(ctx context.Context, cond func() bool, timeout time.Duration) bool {
	var expired <-chan time.Time
	if timeout >= 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	for {
		w.mu.Lock()
		ok, changed := cond(), w.changed
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-expired:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (w *Worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// heldIDs are the attempts the heartbeat lists, sorted: all of them, unless more are
// awaiting delivery than the protocol allows in one heartbeat; then running ones first.
func (w *Worker) heldIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.held))
	for id := range w.held {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > MaxHeartbeatAttempts {
		sort.SliceStable(ids, func(i, j int) bool { return w.running[ids[i]] != nil && w.running[ids[j]] == nil })
		ids = ids[:MaxHeartbeatAttempts]
		sort.Strings(ids)
	}
	return ids
}

func (w *Worker) heldAttempt(id string) *attempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held[id]
}

// forget stops listing the attempt in heartbeats: its outcome is settled, or it was
// abandoned.
func (w *Worker) forget(at *attempt) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held[at.id()] == at {
		delete(w.held, at.id())
		w.touch()
	}
}

func (w *Worker) currentSession() session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.session
}

func (w *Worker) attemptLog(at *attempt) *slog.Logger {
	a := at.assignment
	return w.log().With("worker_id", w.Config.WorkerID, "attempt_id", a.AttemptID, "job", a.Job.Namespace+"/"+a.Job.Name)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
