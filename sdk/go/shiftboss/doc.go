// Package shiftboss is the Go SDK for Shiftboss workers.
//
// A worker registers with the operator, claims job attempts with a long poll,
// runs them with the handler registered for their skill, heartbeats to keep
// their leases, and reports each outcome until the operator has answered it. It
// follows the worker protocol's rules (docs/worker-protocol.md); the wire format is
// that of worker_runtime/protocol.py (docs/worker-api.openapi.json).
//
//	cfg, err := shiftboss.ConfigFromEnv()
//	if err != nil {
//		log.Fatal(err)
//	}
//	w := shiftboss.NewWorker(cfg)
//	w.Handle("add", add, `{"type":"object","required":["a","b"]}`)
//	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
//	defer stop()
//	if err := w.Run(ctx); err != nil {
//		log.Fatal(err)
//	}
//
// A handler is asked to stop in two steps: job.Stopping() is closed (job.StopReason()
// says why), and its context is cancelled a grace period later, with the same
// *StopError as its cause.
//
// The package uses the standard library only.
package shiftboss

// Version is the SDK version sent in registrations and the User-Agent header.
const Version = "0.2.0"
