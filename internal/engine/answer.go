package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/durablehq/durable/internal/workflow"
)

// Limits bound the data a run keeps.
type Limits struct {
	// MaxOutputBytes bounds a step's input and output as JSON.
	MaxOutputBytes int
	// MaxContextBytes bounds the run's context as JSON.
	MaxContextBytes int
}

// Outcome is how a call step's endpoint answered an attempt.
type Outcome int

const (
	// Succeeded: a 2xx other than 202, with the step's output.
	Succeeded Outcome = iota
	// Accepted: a 202; the step finishes later, through its callback.
	Accepted
	// Retryable: a failure worth another attempt (a 5xx, 408, 429, a
	// timeout, a network error).
	Retryable
	// Permanent: a failure that would fail the same way again.
	Permanent
)

// Answer is what an attempt of a call step came back with, from its
// endpoint or through its callback.
type Answer struct {
	Outcome    Outcome
	HTTPStatus int
	Output     json.RawMessage
	Context    json.RawMessage
	Logs       json.RawMessage
	Error      json.RawMessage
	// RetryAfter is the endpoint's Retry-After, 0 when it sent none.
	RetryAfter time.Duration
}

// Attempt is which attempt of a step execution answered: its number, and
// how many of the execution's attempts the engine abandoned (lost or
// stopped workers), which the retry policy does not count.
type Attempt struct {
	Number    int
	Abandoned int
}

// RetriesLeft reports whether the retry policy allows another attempt after
// this one.
func (a Attempt) RetriesLeft(p workflow.RetryPolicy) bool {
	return a.Number-a.Abandoned < p.MaxAttempts
}

// Verdict is what an answer does to its step.
type Verdict int

const (
	// Succeed: the step succeeds with Decision.Output, merging
	// Decision.Patch into the run's context.
	Succeed Verdict = iota
	// Park: the step waits for its callback until its callback timeout.
	Park
	// Retry: the attempt failed, and the next one is made after
	// Decision.Delay.
	Retry
	// Fail: the step fails for good with Decision.Error.
	Fail
)

// Decision is the verdict on an answer, with what it needs.
type Decision struct {
	Verdict Verdict
	// Output is a succeeding step's output, null when it gave none; Patch
	// its context answer, nil when it has nothing to merge.
	Output json.RawMessage
	Patch  json.RawMessage
	// Error is the failed attempt's error; Delay the wait before a retry.
	Error json.RawMessage
	Delay time.Duration
}

// Rand returns a number in [0, n): the jitter of retry delays, injected so
// that decisions can be tested.
type Rand func(n int64) int64

// Judge decides what an answer does to its call step, for a run in st: an
// answer the engine cannot store, an output or a context merge beyond the
// limits fail the step; a retryable failure is retried while the policy
// allows.
func Judge(st *State, step *workflow.Step, at Attempt, ans Answer, lim Limits, rnd Rand) Decision {
	ans = Storable(ans)
	policy := step.Call.Retry
	switch ans.Outcome {
	case Succeeded:
		if len(ans.Output) > lim.MaxOutputBytes {
			return failed(fmt.Sprintf("the step's output is %d bytes; the limit is %d", len(ans.Output), lim.MaxOutputBytes), ans.HTTPStatus)
		}
		patch := ContextPatch(ans.Context)
		if patch != nil && len(st.CtxRaw)+len(patch) > lim.MaxContextBytes {
			if merged, err := mergedSize(st.Ctx, patch); err != nil || merged > lim.MaxContextBytes {
				return failed(fmt.Sprintf("merging the step's context answer would make the run's context larger than %d bytes", lim.MaxContextBytes), ans.HTTPStatus)
			}
		}
		return Decision{Verdict: Succeed, Output: OrNull(ans.Output), Patch: patch}
	case Accepted:
		return Decision{Verdict: Park}
	case Retryable:
		if at.RetriesLeft(policy) && !slices.Contains(policy.NonRetryableStatuses, ans.HTTPStatus) {
			return Decision{Verdict: Retry, Error: ans.Error, Delay: RetryDelay(policy, at.Number, ans.RetryAfter, rnd)}
		}
	}
	return Decision{Verdict: Fail, Error: ans.Error}
}

// JudgeCompensation decides what an answer does to attempt n of a step's
// compensation: any 2xx, 202 included, means done; a retryable failure is
// retried while the compensation's policy allows; else it failed for good.
func JudgeCompensation(p workflow.RetryPolicy, n int, ans Answer, rnd Rand) Decision {
	if err := workflow.CheckStorable(ans.Error); err != nil {
		ans.Error = ErrorJSON(fmt.Sprintf("the compensation's error cannot be stored: %v", err), ans.HTTPStatus)
	}
	switch {
	case ans.Outcome == Succeeded || ans.Outcome == Accepted:
		return Decision{Verdict: Succeed}
	case ans.Outcome == Retryable && n < p.MaxAttempts && !slices.Contains(p.NonRetryableStatuses, ans.HTTPStatus):
		return Decision{Verdict: Retry, Error: ans.Error, Delay: RetryDelay(p, n, ans.RetryAfter, rnd)}
	}
	return Decision{Verdict: Fail, Error: ans.Error}
}

func failed(message string, httpStatus int) Decision {
	return Decision{Verdict: Fail, Error: ErrorJSON(message, httpStatus)}
}

// ContextPatch is a step's context answer as something to merge: nil when
// there is nothing to merge.
func ContextPatch(answer json.RawMessage) json.RawMessage {
	if len(answer) == 0 || string(answer) == "{}" {
		return nil
	}
	return answer
}

// Storable makes an answer fit for storing: an answer whose output, context
// or logs hold text PostgreSQL cannot store faithfully (\u0000, unpaired
// surrogates) fails the step for good, since it would fail the same way
// again; an error holding such text is replaced by a description.
func Storable(ans Answer) Answer {
	for _, part := range []struct {
		name string
		raw  json.RawMessage
	}{{"output", ans.Output}, {"context", ans.Context}, {"logs", ans.Logs}} {
		if err := workflow.CheckStorable(part.raw); err != nil {
			return Answer{
				Outcome: Permanent, HTTPStatus: ans.HTTPStatus,
				Error: ErrorJSON(fmt.Sprintf("the step's %s cannot be stored: %v", part.name, err), ans.HTTPStatus),
			}
		}
	}
	if err := workflow.CheckStorable(ans.Error); err != nil {
		ans.Error = ErrorJSON(fmt.Sprintf("the step's error cannot be stored: %v", err), ans.HTTPStatus)
	}
	return ans
}

// RetryDelay is the wait before the retry after attempt n: the policy's
// backoff with full jitter, or the endpoint's Retry-After when longer,
// never more than the policy's maximum interval.
func RetryDelay(p workflow.RetryPolicy, n int, retryAfter time.Duration, rnd Rand) time.Duration {
	d := time.Duration(rnd(int64(p.Backoff(n)) + 1))
	if retryAfter > d {
		d = min(retryAfter, time.Duration(p.MaxInterval))
	}
	return d
}

// mergedSize is the size of ctx with patch merged in, as JSON.
func mergedSize(ctx map[string]any, patch json.RawMessage) (int, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(patch, &p); err != nil {
		return 0, err
	}
	merged := make(map[string]any, len(ctx)+len(p))
	for k, v := range ctx {
		merged[k] = v
	}
	for k, v := range p {
		merged[k] = v
	}
	b, err := json.Marshal(merged)
	return len(b), err
}

// MaxAbandoned bounds the attempts of one step execution that the engine
// may cut short (lost or stopped workers) before the step fails: they do
// not count against the retry policy, but a step that keeps killing its
// workers must not loop for ever.
const MaxAbandoned = 10

// Resumption is what a claimed work item that invokes a step execution
// does, given the execution as it is now.
type Resumption int

const (
	// Invoke: make the attempt the work item names.
	Invoke Resumption = iota
	// AbandonAndInvoke: the attempt the work item names is still running,
	// so its worker was lost: abandon it, then make the next.
	AbandonAndInvoke
	// GoOn: the step succeeded already; only the move on was lost.
	GoOn
	// Drop: the step ended otherwise; the work item has nothing to do.
	Drop
)

// Resume decides what a work item that invokes attempt itemAttempt of a
// step execution does, the execution being at attempt execAttempt with
// status.
func Resume(status string, execAttempt, itemAttempt int) Resumption {
	switch status {
	case "succeeded":
		return GoOn
	case "failed", "cancelled", "timed_out":
		return Drop
	}
	if execAttempt == itemAttempt && status == "running" {
		return AbandonAndInvoke
	}
	return Invoke
}

// Exhausted says why attempt at of a step may not be made, "" when it may:
// the policy's attempts are used up, or too many were abandoned.
func Exhausted(p workflow.RetryPolicy, at Attempt) string {
	switch {
	case at.Abandoned > MaxAbandoned:
		return fmt.Sprintf("the step's workers were lost or stopped during %d of its attempts", at.Abandoned)
	case at.Number-at.Abandoned > p.MaxAttempts:
		return fmt.Sprintf("all %d attempts were made", p.MaxAttempts)
	}
	return ""
}
