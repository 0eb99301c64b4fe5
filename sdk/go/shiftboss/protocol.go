package shiftboss

import (
	"encoding/json"
	"time"
)

// The wire format of the worker protocol, mirroring worker_runtime/protocol.py (the
// single definition; docs/worker-api.openapi.json is generated from it). The rules for
// using these messages are in docs/worker-protocol.md.

// Limits of the protocol, as in worker_runtime/protocol.py.
const (
	// MaxRequestBytes is the largest request body the operator accepts.
	MaxRequestBytes = 1024 * 1024
	// MaxInlineResultBytes is the largest serialised result stored in a Job's status.
	MaxInlineResultBytes = 32 * 1024
	// MaxHeartbeatAttempts is the most attempt ids one heartbeat may list.
	MaxHeartbeatAttempts = 1024
)

// SkillSpec is a skill a worker offers, with the JSON Schemas of its input and output.
type SkillSpec struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
}

// RegisterRequest is the body of POST /v1/workers/register.
type RegisterRequest struct {
	Pool     string      `json:"pool"`
	WorkerID string      `json:"worker_id"`
	Skills   []SkillSpec `json:"skills"`
	Capacity int         `json:"capacity"`
	Version  string      `json:"version,omitempty"`
	Runtime  string      `json:"runtime,omitempty"`
}

// DefaultCancelGraceSeconds is the protocol's default of RegisterResponse.CancelGraceSeconds.
const DefaultCancelGraceSeconds = 5.0

// RegisterResponse tells a worker how often to heartbeat, how long a lease lasts and
// how long a stopped handler may take before its context is cancelled.
type RegisterResponse struct {
	WorkerID                 string  `json:"worker_id"`
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
	LeaseSeconds             float64 `json:"lease_seconds"`
	// CancelGraceSeconds is nil when the operator did not say: DefaultCancelGraceSeconds.
	CancelGraceSeconds *float64 `json:"cancel_grace_seconds,omitempty"`
}

// ClaimRequest is the body of POST /v1/workers/{worker_id}/claim.
type ClaimRequest struct {
	// MaxAttempts is how many attempts the worker can take now (its free slots).
	MaxAttempts int `json:"max_attempts"`
	// WaitSeconds is how long the operator may hold the request when no job is queued.
	WaitSeconds float64 `json:"wait_seconds"`
	// RequestID makes a retried claim safe: a new id for every new claim, the same id
	// when retrying one whose answer was lost (the operator then replays its answer).
	// Letters, digits, '.', '_', '-'; at most 64.
	RequestID string `json:"request_id,omitempty"`
}

// JobRef names the Job an attempt belongs to.
type JobRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// Assignment is one attempt of a job, handed to a worker by a claim or an assign command.
type Assignment struct {
	AttemptID string          `json:"attempt_id"`
	Job       JobRef          `json:"job"`
	Attempt   int             `json:"attempt"`
	Skill     string          `json:"skill"`
	Params    json.RawMessage `json:"params"`
	// Deadline is when the attempt must end (timeoutSeconds, activeDeadlineSeconds), if any.
	Deadline     *time.Time `json:"deadline,omitempty"`
	LeaseSeconds float64    `json:"lease_seconds"`
}

// ClaimResponse carries the attempts assigned by a claim (none when the long poll timed out).
type ClaimResponse struct {
	Assignments []Assignment `json:"assignments"`
}

// HeartbeatRequest renews the leases of every attempt the worker holds.
type HeartbeatRequest struct {
	// AttemptIDs lists every attempt held: running, stopping, or finished with an
	// outcome the operator has not answered yet.
	AttemptIDs []string `json:"attempt_ids"`
	// Draining says the worker is shutting down and takes no new work.
	Draining bool `json:"draining"`
}

// CommandType is what a heartbeat answer asks a worker to do.
type CommandType string

// The commands of the protocol.
const (
	// CommandCancel stops attempt AttemptID (its job was cancelled or its deadline
	// passed): ask the handler to stop, cancel it after GraceSeconds, report fail.
	CommandCancel CommandType = "cancel"
	// CommandAbandon stops attempt AttemptID at once and reports nothing: the
	// operator has already decided it.
	CommandAbandon CommandType = "abandon"
	// CommandAssign hands over Assignment, which the operator holds for this worker
	// but the heartbeat did not list (a claim answer lost on the wire): start it,
	// release it when there is no free slot, ignore it when it was started here.
	CommandAssign CommandType = "assign"
)

// Command is one instruction in a HeartbeatResponse.
type Command struct {
	Type      CommandType `json:"type"`
	AttemptID string      `json:"attempt_id,omitempty"`
	Reason    string      `json:"reason,omitempty"`
	// GraceSeconds (cancel) is how long the handler may take to stop before its
	// context is cancelled; nil means RegisterResponse.CancelGraceSeconds.
	GraceSeconds *float64 `json:"grace_seconds,omitempty"`
	// Assignment (assign) is the attempt to take up.
	Assignment *Assignment `json:"assignment,omitempty"`
}

// HeartbeatResponse carries the operator's commands.
type HeartbeatResponse struct {
	Commands []Command `json:"commands"`
}

// ProgressReport is the body of POST /v1/attempts/{attempt_id}/progress.
type ProgressReport struct {
	Percent float64 `json:"percent"`
	Message string  `json:"message"`
}

// CompleteReport is the body of POST /v1/attempts/{attempt_id}/complete.
type CompleteReport struct {
	Result json.RawMessage `json:"result"`
}

// FailReport is the body of POST /v1/attempts/{attempt_id}/fail.
type FailReport struct {
	ErrorType string `json:"error_type"`
	Message   string `json:"message"`
	// Retryable is false for errors that must never be retried.
	Retryable bool `json:"retryable"`
	// RetryAfterSeconds asks to wait at least this long before the next attempt.
	RetryAfterSeconds *float64 `json:"retry_after_seconds,omitempty"`
}

// ReleaseReport is the body of POST /v1/attempts/{attempt_id}/release: the attempt is
// given back without an outcome (no free slot, or the worker is shutting down). Its job
// is queued again at once and the attempt does not count against retry.maxAttempts.
type ReleaseReport struct {
	Reason string `json:"reason"`
}

// Ack is the answer to progress, complete, fail and release.
type Ack struct {
	OK bool `json:"ok"`
}

// ErrorDetail is the body of every error answer, inside ErrorResponse.
type ErrorDetail struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Field   *string `json:"field,omitempty"`
}

// ErrorResponse is what the operator answers with a 4xx or 5xx status.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}
