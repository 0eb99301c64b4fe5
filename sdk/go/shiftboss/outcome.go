package shiftboss

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// outcome is the one report that ends an attempt: exactly one field is set (none
// for an abandoned attempt, which is not reported).
type outcome struct {
	complete *CompleteReport
	fail     *FailReport
	release  *ReleaseReport
}

// kind names the report, for logs.
func (o outcome) kind() string {
	switch {
	case o.complete != nil:
		return "complete"
	case o.fail != nil:
		return "fail"
	case o.release != nil:
		return "release"
	}
	return "none"
}

// resultOutcome is what is reported for a handler of skill that returned (result, err).
func resultOutcome(skill string, result any, err error, stop *StopError) outcome {
	if err != nil {
		if stop != nil {
			return stopOutcome(stop) // it failed because it was asked to stop
		}
		var fatal *FatalError
		return outcome{fail: failReport(errorType(err), err.Error(), !errors.As(err, &fatal))}
	}
	data, err := json.Marshal(result)
	if err != nil {
		msg := fmt.Sprintf("skill %q returned a result that cannot be serialised to JSON: %v", skill, err)
		return outcome{fail: failReport("InvalidResult", msg, false)}
	}
	if len(data) > MaxInlineResultBytes {
		msg := fmt.Sprintf("skill %q returned a result of %d bytes, over the %d-byte limit; store large results elsewhere and return a reference",
			skill, len(data), MaxInlineResultBytes)
		return outcome{fail: failReport("ResultTooLarge", msg, false)}
	}
	return outcome{complete: &CompleteReport{Result: data}}
}

// failReport builds a FailReport with its fields cut to the protocol's limits.
func failReport(errorType, message string, retryable bool) *FailReport {
	return &FailReport{
		ErrorType: orDefault(truncate(errorType, 256), "Error"),
		Message:   truncate(message, 4096),
		Retryable: retryable,
	}
}

// truncate cuts s to at most n characters (the protocol counts characters).
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
