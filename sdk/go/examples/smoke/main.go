// Command smoke is a Shiftboss worker for smoke and fault tests against a real
// operator. Its skills:
//
//   - "add" adds two integers;
//   - "sleep" works for params.seconds, stopping early (without a result) when the
//     worker asks it to: it shows how a handler uses job.Stopping().
//
// Configure it with the SHIFTBOSS_* environment variables. With -once it exits after
// it has completed -jobs "add" jobs; otherwise it runs until SIGTERM or SIGINT. With
// -trace FILE, "sleep" appends a JSON line per start, end and stop to FILE, so a test
// can count how often it really ran.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shiftboss/shiftboss/sdk/go/shiftboss"
)

// addSchema requires two integers.
const addSchema = `{
  "type": "object",
  "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
  "required": ["a", "b"],
  "additionalProperties": false
}`

type addParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

const sleepSchema = `{
  "type": "object",
  "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600}},
  "required": ["seconds"]
}`

type sleepParams struct {
	Seconds float64 `json:"seconds"`
}

func main() {
	once := flag.Bool("once", false, "exit after completing -jobs add jobs")
	jobs := flag.Int("jobs", 1, "with -once, how many add jobs to complete before exiting")
	tracePath := flag.String("trace", "", "append a JSON line per sleep start, end and stop to this file")
	flag.Parse()

	cfg, err := shiftboss.ConfigFromEnv()
	if err != nil {
		slog.Error("bad configuration", "error", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	var completed atomic.Int64
	w := shiftboss.NewWorker(cfg)
	w.Handle("add", func(ctx context.Context, job *shiftboss.Job) (any, error) {
		var p addParams
		if err := job.Decode(&p); err != nil {
			return nil, err
		}
		_ = job.Progress(50, "adding")
		if *once && completed.Add(1) >= int64(*jobs) {
			stop() // drain: this attempt is reported before Run returns
		}
		return p.A + p.B, nil
	}, addSchema)
	w.Handle("sleep", func(ctx context.Context, job *shiftboss.Job) (any, error) {
		var p sleepParams
		if err := job.Decode(&p); err != nil {
			return nil, err
		}
		trace(*tracePath, job, "start", "")
		select {
		case <-time.After(time.Duration(p.Seconds * float64(time.Second))):
			trace(*tracePath, job, "end", "")
			return map[string]any{"slept": p.Seconds, "attempt": job.Attempt}, nil
		case <-job.Stopping():
			trace(*tracePath, job, "stopped", string(job.StopReason().Kind))
			return nil, job.StopReason()
		}
	}, sleepSchema)

	if err := w.Run(ctx); err != nil {
		slog.Error("worker failed", "error", err)
		os.Exit(1)
	}
}

// trace appends one JSON line to path (one O_APPEND write: lines never interleave).
func trace(path string, job *shiftboss.Job, event, reason string) {
	if path == "" {
		return
	}
	line, _ := json.Marshal(map[string]any{
		"job": job.Ref.Name, "attempt": job.Attempt, "worker": job.WorkerID,
		"event": event, "reason": reason, "t": float64(time.Now().UnixNano()) / 1e9,
	})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		slog.Error("cannot write the trace", "error", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}
