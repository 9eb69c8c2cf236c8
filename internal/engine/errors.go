package engine

import (
	"encoding/json"
	"fmt"

	"github.com/durablehq/durable/internal/workflow"
)

// ErrorJSON is a step error of the engine's own making.
func ErrorJSON(message string, httpStatus int) json.RawMessage {
	e := map[string]any{"message": message}
	if httpStatus != 0 {
		e["status"] = httpStatus
	}
	b, _ := json.Marshal(e) // a map of a string and an int cannot fail
	return b
}

// RunError is a run's error: what it says, its code, the step it is about
// and the step's own error.
func RunError(message, code, step string, details json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(workflow.RunError{Message: message, Code: code, Step: step, Details: details}) // strings and valid JSON cannot fail
	return b
}

// WithCause extends message with the message of the error cause, if it has
// one.
func WithCause(message string, cause json.RawMessage) string {
	var detail struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(cause, &detail) == nil && detail.Message != "" {
		message += ": " + detail.Message
	}
	return message
}

// NestedError is an error that wraps the error of what it is about, with
// its message extended by the inner one's.
func NestedError(message string, inner json.RawMessage, fields map[string]any) json.RawMessage {
	e := map[string]any{"message": WithCause(message, inner), "error": json.RawMessage(OrNull(inner))}
	for k, v := range fields {
		e[k] = v
	}
	b, _ := json.Marshal(e) // strings and valid JSON always encode
	return b
}

// OrNull is a JSON payload, or null when there is none.
func OrNull(p json.RawMessage) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage("null")
	}
	return p
}

// RunEnd is how a run ends: its status, the history event that says so,
// its output or its error.
type RunEnd struct {
	Status workflow.RunStatus
	Event  string
	Output json.RawMessage
	Error  json.RawMessage
}

// RunFails is how a run ends when its step key failed for good with
// stepErr and nothing around the step caught the failure: failed, or
// timed_out when the step was a wait that timed out.
func RunFails(key string, stepErr json.RawMessage, timedOut bool) RunEnd {
	if timedOut {
		return RunEnd{Status: workflow.RunTimedOut, Event: workflow.EventRunTimedOut,
			Error: RunError(fmt.Sprintf("step %s timed out waiting", key), "wait_timed_out", key, stepErr)}
	}
	return RunEnd{Status: workflow.RunFailed, Event: workflow.EventRunFailed,
		Error: RunError(WithCause(fmt.Sprintf("step %s failed", key), stepErr), "step_failed", key, stepErr)}
}
