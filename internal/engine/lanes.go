package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/durablehq/durable/internal/workflow"
)

// Block is what a parallel or foreach step's execution counts of its lanes.
type Block struct {
	// Status is the block's own: "running" until it ends.
	Status                        string
	Total, Started, Ended, Failed int
}

// Opens reports whether a lane that ended makes room for another: a
// foreach with items not opened yet.
func (b Block) Opens() bool { return b.Status == "running" && b.Started < b.Total }

// Done reports whether every lane of a running block has ended, so the
// block ends too.
func (b Block) Done() bool { return b.Status == "running" && b.Ended >= b.Total }

// Lane is one lane of a block as its block ends: its index among the
// block's branches or items, its status and its output or error.
type Lane struct {
	Index  int
	Status string
	Output json.RawMessage
	Error  json.RawMessage
}

// LaneError is the error of a lane whose step failedKey failed with stepErr.
func LaneError(failedKey string, stepErr json.RawMessage) json.RawMessage {
	return NestedError(fmt.Sprintf("step %s failed", failedKey), stepErr, map[string]any{"step": failedKey})
}

// LaneFailed decides what the failure of lane laneKey, with laneErr, does to
// its running block: under fail_fast the block fails at once, with the
// error returned; otherwise nil: the failure is counted and the block's
// other lanes go on.
func LaneFailed(block *workflow.Step, laneKey string, laneErr json.RawMessage) json.RawMessage {
	if OnError(block) != workflow.ErrorFailFast {
		return nil
	}
	_, lane := LaneBlock(laneKey)
	what := "branch " + lane
	if block.Foreach != nil {
		what = "item " + lane
	}
	return NestedError(what+" failed", laneErr, map[string]any{"lane": laneKey})
}

// OnError is a block's error policy.
func OnError(block *workflow.Step) workflow.ErrorPolicy {
	if block.Parallel != nil {
		return block.Parallel.OnError
	}
	return block.Foreach.OnError
}

// Lanes is how a block begins: the lanes it will run (a parallel step's
// branch names; nil for a foreach, whose items are numbered), how many,
// how many open at once, and what its execution records as its input. A
// foreach whose items cannot be evaluated or are too large fails with
// problem.
func Lanes(ctx context.Context, st *State, step *workflow.Step, lim Limits) (input json.RawMessage, names []string, total, open int, problem error) {
	if step.Parallel != nil {
		for _, b := range step.Parallel.Branches {
			names = append(names, b.Name)
		}
		input, _ = json.Marshal(map[string]any{"branches": names}) // strings always encode
		return input, names, len(names), len(names), nil
	}
	items, err := step.Foreach.Items.EvalList(ctx, st.Activation())
	if err == nil {
		input, err = json.Marshal(map[string]any{"items": items, "count": len(items)})
	}
	switch {
	case err != nil:
		return nil, nil, 0, 0, fmt.Errorf("the items could not be evaluated: %w", err)
	case len(input) > lim.MaxOutputBytes:
		return nil, nil, 0, 0, fmt.Errorf("the list of items is %d bytes as JSON; the limit is %d", len(input), lim.MaxOutputBytes)
	}
	return input, nil, len(items), step.Foreach.Concurrency, nil
}

// MergesContext reports whether a block's end merges into the run's
// context, so that its applier reads the context as it is then.
func MergesContext(step *workflow.Step) bool {
	return (step.Parallel != nil && step.Parallel.Merge == workflow.MergeDeepMerge) || (step.Foreach != nil && step.Foreach.CollectAs != "")
}

// CollectItems is the output of a foreach all of whose items ended, from
// their outputs and errors (JSON arrays in item order), and what it merges
// into the run's context (nil when nothing).
func CollectItems(step *workflow.Step, results, failures json.RawMessage) (output, patch json.RawMessage) {
	if step.Foreach.OnError != workflow.ErrorCollect {
		failures = json.RawMessage("[]")
	}
	output, _ = json.Marshal(map[string]json.RawMessage{"results": results, "errors": failures}) // valid JSON always encodes
	if step.Foreach.CollectAs != "" {
		patch, _ = json.Marshal(map[string]json.RawMessage{step.Foreach.CollectAs: results})
	}
	return output, patch
}

// JoinBranches merges the outputs of a parallel step's branches, all of
// which ended, and for deep_merge the run's context as it is now. It
// returns the step's output and what to merge into the run's context, or
// the step's error: branches failed (under complete_all), or deep_merge met
// conflicting values.
func JoinBranches(step *workflow.Step, lanes []Lane, runContext json.RawMessage) (output, patch, problem json.RawMessage, err error) {
	failed := map[string]json.RawMessage{}
	outputs := make([]json.RawMessage, len(lanes))
	names := make([]string, len(lanes))
	for i, l := range lanes {
		names[i] = step.Parallel.Branches[l.Index].Name
		outputs[i] = OrNull(l.Output)
		if l.Status != "succeeded" {
			failed[names[i]] = l.Error
		}
	}
	if len(failed) > 0 {
		b, _ := json.Marshal(map[string]any{
			"message":  fmt.Sprintf("%d of %d branches failed", len(failed), len(lanes)),
			"branches": failed,
		}) // valid JSON always encodes
		return nil, nil, b, nil
	}
	if step.Parallel.Merge != workflow.MergeDeepMerge {
		byName := make(map[string]json.RawMessage, len(lanes))
		for i, name := range names {
			byName[name] = outputs[i]
		}
		output, _ = json.Marshal(byName) // valid JSON always encodes
		return output, nil, nil, nil
	}
	merged := map[string]any{}
	owners := map[string]string{}
	var conflicts []mergeConflict
	for i, raw := range outputs {
		v, err := workflow.DecodeJSON(raw)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("decode output of branch %s: %w", names[i], err)
		}
		obj, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				continue // a branch with nothing to say merges nothing
			}
			conflicts = append(conflicts, mergeConflict{Path: "", Branches: []string{names[i]}, Reason: "the branch's output is not an object"})
			continue
		}
		deepMerge(merged, obj, "", names[i], owners, &conflicts)
	}
	if len(conflicts) > 0 {
		b, _ := json.Marshal(map[string]any{
			"message":   fmt.Sprintf("deep_merge found conflicting values among the branches' outputs at %s", conflictPaths(conflicts)),
			"conflicts": conflicts,
		}) // plain values always encode
		return nil, nil, b, nil
	}
	if output, err = json.Marshal(merged); err != nil {
		return nil, nil, nil, fmt.Errorf("encode merged output: %w", err)
	}
	// The merge goes deep into the context too.
	current, err := workflow.DecodeJSON(runContext)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("decode run context: %w", err)
	}
	ctxObj, _ := current.(map[string]any)
	if ctxObj == nil {
		ctxObj = map[string]any{}
	}
	overwrite(ctxObj, merged)
	whole, err := json.Marshal(ctxObj)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encode run context: %w", err)
	}
	// The whole context replaces the old: || with it is the same.
	return output, whole, nil, nil
}

// conflictPaths lists the paths of conflicts for a message.
func conflictPaths(conflicts []mergeConflict) string {
	paths := make([]string, len(conflicts))
	for i, c := range conflicts {
		paths[i] = c.Path
		if paths[i] == "" {
			paths[i] = "the top (branch " + c.Branches[0] + ")"
		}
	}
	return strings.Join(paths, ", ")
}

// mergeConflict is a value two branches of a deep_merge set differently.
type mergeConflict struct {
	Path     string   `json:"path"` // a JSON Pointer into the merged output
	Branches []string `json:"branches"`
	Reason   string   `json:"reason,omitempty"`
}

// deepMerge merges src, the output of branch, into dst: objects merge
// member by member; any other value set by two branches must be equal, or
// the path is a conflict. owners remembers which branch set each path.
func deepMerge(dst, src map[string]any, path, branch string, owners map[string]string, conflicts *[]mergeConflict) {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := src[k]
		p := path + "/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
		old, exists := dst[k]
		if !exists {
			dst[k], owners[p] = v, branch
			continue
		}
		oldObj, oldIsObj := old.(map[string]any)
		newObj, newIsObj := v.(map[string]any)
		switch {
		case oldIsObj && newIsObj:
			deepMerge(oldObj, newObj, p, branch, owners, conflicts)
		case reflect.DeepEqual(old, v):
		default:
			*conflicts = append(*conflicts, mergeConflict{Path: p, Branches: []string{ownerOf(owners, p), branch}})
		}
	}
}

// ownerOf is the branch that set path or the object holding it.
func ownerOf(owners map[string]string, path string) string {
	for p := path; p != ""; p = p[:strings.LastIndexByte(p, '/')] {
		if o, ok := owners[p]; ok {
			return o
		}
	}
	return ""
}

// overwrite merges src into dst deeply, src winning: a parallel step's
// merged output over the run's context.
func overwrite(dst, src map[string]any) {
	for k, v := range src {
		if d, ok := dst[k].(map[string]any); ok {
			if s, ok := v.(map[string]any); ok {
				overwrite(d, s)
				continue
			}
		}
		dst[k] = v
	}
}
