package shiftboss

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// HandlerFunc runs one attempt. Its ctx is cancelled when the operator cancels or
// abandons the attempt, or when a shutdown's drain timeout passes. The result must
// be JSON-serialisable. Returning Fatal(err) fails the job without retry; any other
// error fails the attempt as retryable, with the error's short type name as
// error_type (see TypedError to choose it).
type HandlerFunc func(ctx context.Context, job *Job) (any, error)

var skillNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

type skill struct {
	spec    SkillSpec
	handler HandlerFunc
}

// Worker runs handlers for the attempts the operator assigns to it.
//
// Create it with NewWorker, register handlers with Handle, then call Run once.
type Worker struct {
	// Config is the worker's configuration (from ConfigFromEnv).
	Config Config
	// Client talks to the operator; nil means NewClient(Config.OperatorURL, Config.ReadToken).
	Client *Client
	// Logger receives the worker's log; nil means slog.Default().
	Logger *slog.Logger
	// Version is the application's version sent at registration (default: the SDK's).
	Version string

	skills map[string]*skill
	order  []string

	// Timings; tests shorten them.
	retryInitial      time.Duration // first wait after a failed claim or report
	retryMax          time.Duration // the cap of those waits
	minClaimInterval  time.Duration // an empty claim answered faster than this waits the rest
	shutdownGrace     time.Duration // after the drain timeout, how long cancelled handlers get
	drainReportBudget time.Duration // the budget for reporting outcomes while shutting down

	started      atomic.Bool
	mu           sync.Mutex
	attempts     map[string]*attempt
	interval     time.Duration // the heartbeat interval
	lease        time.Duration
	registeredAt time.Time
	registerMu   sync.Mutex
	stopClaiming context.CancelFunc
	draining     context.Context // done once draining has begun
	slotFreed    chan struct{}
	wg           sync.WaitGroup // attempt goroutines and hand-backs
}

// NewWorker returns a Worker for cfg with no handlers yet.
func NewWorker(cfg Config) *Worker {
	return &Worker{
		Config:            cfg,
		skills:            map[string]*skill{},
		retryInitial:      500 * time.Millisecond,
		retryMax:          10 * time.Second,
		minClaimInterval:  time.Second,
		shutdownGrace:     5 * time.Second,
		drainReportBudget: 10 * time.Second,
		attempts:          map[string]*attempt{},
		interval:          5 * time.Second,
		lease:             30 * time.Second,
		slotFreed:         make(chan struct{}, 1),
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

// Run registers, then claims and runs attempts until ctx is cancelled or the
// operator sends a drain command. Then it drains: no new claims, running attempts
// get Config.DrainTimeout to finish, and those still running are cancelled and
// handed back as retryable WorkerShutdown failures. Run returns nil after a drain,
// or an error when the configuration is invalid or the operator refuses the
// registration (a bad token, an unknown pool: things a human must fix).
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
		w.Client = NewClient(w.Config.OperatorURL, w.Config.ReadToken)
	}
	bg := context.WithoutCancel(ctx) // reports outlive ctx: they are part of the drain
	draining, stopClaiming := context.WithCancel(ctx)
	defer stopClaiming()
	w.mu.Lock()
	w.draining, w.stopClaiming = draining, stopClaiming
	w.mu.Unlock()
	log := w.log().With("worker_id", w.Config.WorkerID)

	if err := w.registerUntilDone(draining); err != nil {
		if draining.Err() != nil {
			return nil
		}
		return err
	}
	log.Info("registered", "operator", w.Config.OperatorURL, "pool", w.Config.Pool,
		"skills", len(w.skills), "concurrency", w.Config.Concurrency)

	hbCtx, stopHeartbeat := context.WithCancel(bg)
	hbDone, drainSent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeatLoop(hbCtx, draining, drainSent)
	}()
	w.claimLoop(draining, bg)
	w.finish(bg)
	select { // let the operator hear that this worker is draining before it goes
	case <-drainSent:
	case <-time.After(2 * time.Second):
	}
	stopHeartbeat()
	<-hbDone
	log.Info("worker stopped")
	return nil
}

// beginDrain stops claiming; Run then drains and returns.
func (w *Worker) beginDrain(reason string) {
	w.mu.Lock()
	stop, draining := w.stopClaiming, w.draining
	w.mu.Unlock()
	if stop != nil && draining.Err() == nil {
		w.log().Info("draining: no new claims", "reason", reason, "running", w.running())
		stop()
	}
}

func (w *Worker) registerRequest() *RegisterRequest {
	skills := make([]SkillSpec, 0, len(w.order))
	for _, name := range w.order {
		skills = append(skills, w.skills[name].spec)
	}
	version := w.Version
	if version == "" {
		version = Version
	}
	if len(version) > 64 {
		version = version[:64]
	}
	return &RegisterRequest{
		Pool:     w.Config.Pool,
		WorkerID: w.Config.WorkerID,
		Skills:   skills,
		Capacity: w.Config.Concurrency,
		Version:  version,
		Runtime:  "go",
	}
}

func (w *Worker) registerOnce(ctx context.Context) error {
	resp, err := w.Client.Register(ctx, w.registerRequest())
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.interval = max(50*time.Millisecond, seconds(resp.HeartbeatIntervalSeconds))
	if resp.LeaseSeconds > 0 {
		w.lease = seconds(resp.LeaseSeconds)
	}
	w.registeredAt = time.Now()
	return nil
}

// registerUntilDone registers, retrying while the operator is unreachable (or the
// token cannot be read yet). A refusal is returned: it needs a human.
func (w *Worker) registerUntilDone(ctx context.Context) error {
	delay := w.retryInitial
	for tries := 1; ; tries++ {
		err := w.registerOnce(ctx)
		if err == nil {
			return nil
		}
		var pe *ProtocolError
		if ctx.Err() != nil || (errors.As(err, &pe) && !errors.Is(err, ErrUnavailable)) {
			return fmt.Errorf("shiftboss: registering worker %s in pool %s: %w", w.Config.WorkerID, w.Config.Pool, err)
		}
		w.log().Warn("cannot register yet; retrying", "try", tries, "error", err, "retry_in", delay)
		if sleep(ctx, delay) != nil {
			return ctx.Err()
		}
		delay = min(delay*2, w.retryMax)
	}
}

// reregister registers again after the operator forgot this worker; refusedAt is
// when the refused request was sent: a registration after it makes this a no-op.
func (w *Worker) reregister(ctx context.Context, refusedAt time.Time) {
	w.registerMu.Lock()
	defer w.registerMu.Unlock()
	w.mu.Lock()
	done := w.registeredAt.After(refusedAt)
	w.mu.Unlock()
	if done {
		return
	}
	w.log().Warn("the operator does not know this worker any more: registering again")
	if err := w.registerOnce(ctx); err != nil {
		w.log().Warn("registering again failed", "error", err)
	}
}

func (w *Worker) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.attempts)
}

// runningIDs are the attempts whose leases the heartbeat renews.
func (w *Worker) runningIDs() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.attempts))
	for id, a := range w.attempts {
		if !a.state().abandoned {
			ids = append(ids, id)
		}
	}
	return ids
}

func (w *Worker) attempt(id string) *attempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.attempts[id]
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
