// Package shiftboss is the Go SDK for Shiftboss workers.
//
// A worker registers with the operator, claims job attempts with a long poll,
// runs them with the handler registered for their skill, heartbeats to keep
// their leases, and reports each outcome. The wire format is the worker
// protocol of worker_runtime/protocol.py (docs/worker-api.openapi.json).
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
// The package uses the standard library only.
package shiftboss

// Version is the SDK version sent in registrations and the User-Agent header.
const Version = "0.1.0"
