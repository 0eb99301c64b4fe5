package shiftboss

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
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
	// ErrUnavailable: the operator could not be reached, or kept answering 5xx or 429,
	// through every retry.
	ErrUnavailable = errors.New("shiftboss: operator unavailable")
)

// CodeWorkerNotRegistered is the ErrorDetail code of a 404 meaning "register again".
const CodeWorkerNotRegistered = "worker_not_registered"

// ProtocolError is an error answer of the operator (an ErrorResponse).
//
// errors.Is(err, ErrNotCurrent) holds for status 409, ErrUnauthorized for 401 and
// 403, ErrWorkerNotRegistered for code "worker_not_registered".
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
	}
	return false
}

// UnavailableError is returned when every try of a request failed with a transport
// error, a 5xx or a 429. It matches ErrUnavailable and unwraps to the last problem.
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

// Is matches ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

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
