// Command smoke is a Shiftboss worker with one skill, "add", for smoke tests
// against a real operator.
//
// Configure it with the SHIFTBOSS_* environment variables. With -once it exits
// after it has completed -jobs jobs; otherwise it runs until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

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

func main() {
	once := flag.Bool("once", false, "exit after completing -jobs jobs")
	jobs := flag.Int("jobs", 1, "with -once, how many jobs to complete before exiting")
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

	if err := w.Run(ctx); err != nil {
		slog.Error("worker failed", "error", err)
		os.Exit(1)
	}
}
