package shiftboss

import (
	"encoding/json"
	"time"
)

// Limits of the protocol, as in worker_runtime/protocol.py.
const (
	// MaxRequestBytes is the largest request body the operator accepts.
	MaxRequestBytes = 1024 * 1024
	// MaxInlineResultBytes is the largest serialised result stored in a Job's status.
	MaxInlineResultBytes = 32 * 1024
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

// RegisterResponse tells a worker how often to heartbeat and how long a lease lasts.
type RegisterResponse struct {
	WorkerID                 string  `json:"worker_id"`
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
	LeaseSeconds             float64 `json:"lease_seconds"`
}

// ClaimRequest is the body of POST /v1/workers/{worker_id}/claim.
type ClaimRequest struct {
	// MaxAttempts is how many attempts the worker can take now (its free slots).
	MaxAttempts int `json:"max_attempts"`
	// WaitSeconds is how long the operator may hold the request when no job is queued.
	WaitSeconds float64 `json:"wait_seconds"`
}

// JobRef names the Job an attempt belongs to.
type JobRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
}

// Assignment is one attempt of a job, handed to a worker by a claim.
type Assignment struct {
	AttemptID    string          `json:"attempt_id"`
	Job          JobRef          `json:"job"`
	Attempt      int             `json:"attempt"`
	Skill        string          `json:"skill"`
	Params       json.RawMessage `json:"params"`
	Deadline     *time.Time      `json:"deadline,omitempty"`
	LeaseSeconds float64         `json:"lease_seconds"`
}

// ClaimResponse carries the attempts assigned by a claim (none when the long poll timed out).
type ClaimResponse struct {
	Assignments []Assignment `json:"assignments"`
}

// HeartbeatRequest renews the leases of the attempts a worker is running.
type HeartbeatRequest struct {
	AttemptIDs []string `json:"attempt_ids"`
	Draining   bool     `json:"draining"`
}

// CommandType is what a heartbeat answer asks a worker to do.
type CommandType string

// The commands of the protocol.
const (
	// CommandCancel stops attempt AttemptID: its job was cancelled or timed out.
	CommandCancel CommandType = "cancel"
	// CommandAbandon drops attempt AttemptID without reporting: it is no longer current.
	CommandAbandon CommandType = "abandon"
	// CommandDrain asks the worker to stop claiming, finish its attempts and exit.
	CommandDrain CommandType = "drain"
)

// Command is one instruction in a HeartbeatResponse.
type Command struct {
	Type      CommandType `json:"type"`
	AttemptID string      `json:"attempt_id,omitempty"`
	Reason    string      `json:"reason,omitempty"`
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

// Ack is the answer to progress, complete and fail.
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
