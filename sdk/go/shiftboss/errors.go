package shiftboss

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"syscall"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrNotCurrent: the attempt is no longer current (HTTP 409): its lease expired,
	// or the job was cancelled or already finished. Drop the attempt silently.
	ErrNotCurrent = errors.New("shiftboss: the attempt is no longer current")
	// ErrUnauthorized: the token was refused (HTTP 401) or may not act for this pool (403).
	ErrUnauthorized = errors.New("shiftboss: unauthorized")
	// ErrWorkerNotRegistered: the operator does not know this worker (it restarted):
	// register again.
	ErrWorkerNotRegistered = errors.New("shiftboss: worker not registered")
	// ErrUnknownAttempt: the operator does not know the attempt (HTTP 404
	// unknown_attempt): it has already decided it. Drop the attempt silently.
	ErrUnknownAttempt = errors.New("shiftboss: unknown attempt")
	// ErrUnavailable: the operator could not be reached, or kept answering 5xx or 429,
	// through every retry.
	ErrUnavailable = errors.New("shiftboss: operator unavailable")
	// ErrOperatorAbsent: an ErrUnavailable whose last try was refused a connection or
	// answered 503. The operator is restarting, a standby, or cannot reach the
	// Kubernetes API server, so nobody can re-dispatch this worker's attempts: the
	// worker's view of its leases does not lapse (docs/worker-protocol.md).
	ErrOperatorAbsent = errors.New("shiftboss: operator absent")
)

// The ErrorDetail codes the SDK acts on.
const (
	// CodeWorkerNotRegistered is the code of a 404 meaning "register again".
	CodeWorkerNotRegistered = "worker_not_registered"
	// CodeUnknownAttempt is the code of a 404 meaning "the operator has decided this attempt".
	CodeUnknownAttempt = "unknown_attempt"
)

// ProtocolError is an error answer of the operator (an ErrorResponse).
//
// errors.Is(err, ErrNotCurrent) holds for status 409, ErrUnauthorized for 401 and
// 403, ErrWorkerNotRegistered for code "worker_not_registered", ErrUnknownAttempt for
// code "unknown_attempt".
type ProtocolError struct {
	Status  int    // the HTTP status
	Code    string // the stable machine-readable code, e.g. "attempt_not_current"
	Message string // the human explanation
	Field   string // the request field at fault, if any (dotted path)
}

func (e *ProtocolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shiftboss: HTTP %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Field != "" {
		b.WriteString(" (field " + e.Field + ")")
	}
	return b.String()
}

// Is makes errors.Is match the sentinel errors the status and code stand for.
func (e *ProtocolError) Is(target error) bool {
	switch target {
	case ErrNotCurrent:
		return e.Status == 409
	case ErrUnauthorized:
		return e.Status == 401 || e.Status == 403
	case ErrWorkerNotRegistered:
		return e.Code == CodeWorkerNotRegistered
	case ErrUnknownAttempt:
		return e.Status == 404 && e.Code == CodeUnknownAttempt
	}
	return false
}

// UnavailableError is returned when every try of a request failed with a transport
// error, a 5xx or a 429. It matches ErrUnavailable, ErrOperatorAbsent when the last
// try was refused a connection or answered 503, and unwraps to the last problem.
type UnavailableError struct {
	Path  string
	Tries int
	Err   error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("shiftboss: POST %s failed %d times: %v", e.Path, e.Tries, e.Err)
}

// Unwrap returns the last problem.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is matches ErrUnavailable, and ErrOperatorAbsent when the operator was absent.
func (e *UnavailableError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return true
	case ErrOperatorAbsent:
		var pe *ProtocolError
		if errors.As(e.Err, &pe) {
			return pe.Status == http.StatusServiceUnavailable
		}
		return errors.Is(e.Err, syscall.ECONNREFUSED)
	}
	return false
}

// FatalError marks a handler error that must not be retried; create it with Fatal.
type FatalError struct{ Err error }

func (e *FatalError) Error() string {
	if e.Err == nil {
		return "fatal error"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err so that the attempt fails without retry (retryable: false).
func Fatal(err error) error { return &FatalError{Err: err} }

// TypedError lets an error choose the error_type reported for it.
type TypedError interface {
	error
	ErrorType() string
}

// ParamsError is returned by Job.Decode when the params do not fit the target.
type ParamsError struct{ Err error }

func (e *ParamsError) Error() string { return "invalid params: " + e.Err.Error() }

// Unwrap returns the decoding error.
func (e *ParamsError) Unwrap() error { return e.Err }

// ErrorType is "InvalidParams", as for the Python runtime.
func (e *ParamsError) ErrorType() string { return "InvalidParams" }

// errorType is the short type name reported as error_type for err: the ErrorType of
// a TypedError in its tree, else the name of the first type in the tree (depth
// first) that is not a plain wrapper, else "Error".
func errorType(err error) string {
	var typed TypedError
	if errors.As(err, &typed) {
		return typed.ErrorType()
	}
	if name := typeName(err); name != "" {
		return name
	}
	return "Error"
}

func typeName(err error) string {
	if err == nil {
		return ""
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch name := t.Name(); name {
	case "", "errorString", "wrapError", "wrapErrors", "joinError", "FatalError":
	default:
		return name
	}
	switch e := err.(type) {
	case interface{ Unwrap() error }:
		return typeName(e.Unwrap())
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			if name := typeName(inner); name != "" {
				return name
			}
		}
	}
	return ""
}
