package orchestrator

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/durablehq/durable/internal/postgres"
	"github.com/durablehq/durable/internal/workflow"
)

// Lanes are what parallel and foreach steps run side by side: one per
// branch, one per item. Each is a step execution of type "lane" whose parent
// is the block's execution, and each runs its steps with work items of its
// own that any worker may claim.
//
// Keys. A step execution's key is its step's name, qualified inside a
// foreach item by the item's lane: "ship[3].label". A lane's key is its
// block's key and the branch name or item index in brackets:
// "notify[email]", "ship[3]". Step and branch names are identifiers, so "."
// and "[" never occur in them. The steps of a parallel branch keep their
// plain names (each runs once per block), so expressions after the block
// still see them as steps.NAME; a foreach item's steps are seen as
// steps.NAME only inside that item.

// laneExecType is the step type of a lane's execution.
const laneExecType = "lane"

// splitKey splits a step key into its scope (the foreach lanes it is in,
// "" at the top) and the step's name.
func splitKey(key string) (scope, name string) {
	i := strings.LastIndexByte(key, '.')
	return key[:i+1], key[i+1:]
}

// isLaneKey reports whether a key names a lane rather than a step.
func isLaneKey(key string) bool { return strings.HasSuffix(key, "]") }

// laneBlock splits a lane key into its block's key and the lane's name
// (a branch name or an item index).
func laneBlock(laneKey string) (blockKey, lane string) {
	i := strings.LastIndexByte(laneKey, '[')
	return laneKey[:i], laneKey[i+1 : len(laneKey)-1]
}

// scopeChain lists the scopes a scope is nested in, outermost first, and the
// scope itself: "", "ship[3].", "ship[3].box[0]." for "ship[3].box[0].".
func scopeChain(scope string) []string {
	chain := []string{""}
	for i := 0; i+1 < len(scope); i++ {
		if scope[i] == ']' && scope[i+1] == '.' {
			chain = append(chain, scope[:i+2])
		}
	}
	return chain
}

// laneKeyOf is the key of lane list of block (see [workflow.Step.Children])
// for a step in scope.
func laneKeyOf(scope string, block *workflow.Step, list int) string {
	if block.Parallel != nil {
		return scope + block.Name + "[" + block.Parallel.Branches[list].Name + "]"
	}
	return strings.TrimSuffix(scope, ".")
}

// laneOf returns the key of the lane the step named name runs in when in
// scope, "" when it is in none.
func laneOf(def *workflow.Definition, scope, name string) string {
	for p, list := def.Enclosing(name); p != nil; p, list = def.Enclosing(p.Name) {
		if p.OpensLanes() {
			return laneKeyOf(scope, p, list)
		}
	}
	return ""
}

// parentKeyOf returns the key of the execution the step named name is
// nested in when in scope: its branch or its lane; "" at the top.
func parentKeyOf(def *workflow.Definition, scope, name string) string {
	p, list := def.Enclosing(name)
	switch {
	case p == nil:
		return ""
	case p.OpensLanes():
		return laneKeyOf(scope, p, list)
	default:
		return scope + p.Name
	}
}

// scopeOf is the scope of the position a work item names with key: a
// step's key, or a lane's key for the lane's first step.
func scopeOf(def *workflow.Definition, key string) string {
	if !isLaneKey(key) {
		scope, _ := splitKey(key)
		return scope
	}
	blockKey, _ := laneBlock(key)
	scope, name := splitKey(blockKey)
	if block := def.Step(name); block != nil && block.Foreach != nil {
		return key + "."
	}
	return scope
}

// after finds what follows the step named name: the next step, the
// branches that end with it (innermost first) and whether its lane ends
// with it, in which case there is no next step here: the lane's block goes
// on when all its lanes have ended.
func after(def *workflow.Definition, name string) (next *workflow.Step, ended []*workflow.Step, laneEnds bool) {
	next, ended = def.Successor(name)
	for i, e := range ended {
		if e.OpensLanes() {
			return nil, ended[:i], true
		}
	}
	return next, ended, false
}

// itemOf is what a foreach lane's execution records as its input.
type itemOf struct {
	Item  json.RawMessage `json:"item"`
	Index int64           `json:"index"`
}

// startBlock starts a parallel or foreach step: its execution records the
// branches or the items, and its first lanes open — every branch, or as
// many items as its concurrency allows — each with a work item that starts
// the lane's first step, except the first lane: the work item that reached
// the block starts it, and the worker goes on with it. A foreach over no
// items succeeds at once.
func (s *Service) startBlock(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, step *workflow.Step) (*attempt, error) {
	a := newExecution(item, st, step)
	var input json.RawMessage
	var names []string
	var total, open int
	var problem error
	if step.Parallel != nil {
		for _, b := range step.Parallel.Branches {
			names = append(names, b.Name)
		}
		total, open = len(names), len(names)
		input, _ = json.Marshal(map[string]any{"branches": names}) // strings always encode
	} else {
		items, err := step.Foreach.Items.EvalList(ctx, st.activation())
		if err == nil {
			input, err = json.Marshal(map[string]any{"items": items, "count": len(items)})
		}
		switch {
		case err != nil:
			problem = fmt.Errorf("the items could not be evaluated: %w", err)
			input = nil
		case len(input) > s.limits.MaxOutputBytes:
			problem = fmt.Errorf("the list of items is %d bytes as JSON; the limit is %d", len(input), s.limits.MaxOutputBytes)
			input = nil
		}
		total, open = len(items), step.Foreach.Concurrency
	}
	if err := s.beginExecution(ctx, tx, st, item, s.execution(a, input)); err != nil {
		return nil, err
	}
	if problem != nil {
		return nil, s.failStep(ctx, tx, a, errorJSON(problem.Error(), 0), 0, "failed")
	}
	if ok, err := tx.SetBlockLanes(ctx, a.execID, total); err != nil || !ok {
		return nil, orStale(err, ok)
	}
	block := postgres.BlockCounts{ID: a.execID, Status: "running", Attempt: 1}
	if total == 0 {
		if ok, err := tx.CompleteWork(ctx, item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
		return nil, s.finishBlock(ctx, tx, st, step, a.key, block)
	}
	opened, err := tx.OpenLanes(ctx, a.execID, open, names, true)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(opened))
	for i, l := range opened {
		keys[i] = l.Key
	}
	appendHistory(tx, st.run.ID, workflow.EventLanesOpened, a.key, nil, map[string]any{"lanes": keys, "total": total})
	return s.goOnWith(ctx, tx, item, st, opened[0])
}

// goOnWith starts the first step of a lane that the transaction opened with
// the work item the worker holds, so that the worker goes on with it at once
// rather than leaving it to a claim. Its siblings' items are left to any
// worker.
func (s *Service) goOnWith(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, lane postgres.OpenedLane) (*attempt, error) {
	inLane, err := st.inScope(ctx, tx, scopeOf(st.def, lane.Key))
	if err != nil {
		return nil, err
	}
	first, err := firstOfLane(inLane, lane.Key)
	if err != nil {
		return nil, err
	}
	return s.startStep(ctx, tx, item, inLane, first)
}

// startLane starts the first step of a lane that a block opened, unless a
// failing sibling cancelled the lane meanwhile.
func (s *Service) startLane(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string) (*attempt, error) {
	if gone, err := s.laneGone(ctx, tx, item, st, laneKey); err != nil || gone {
		return nil, err
	}
	first, err := firstOfLane(st, laneKey)
	if err != nil {
		return nil, err
	}
	return s.startStep(ctx, tx, item, st, first)
}

// laneGone reports whether a lane is no longer running (a failing sibling
// cancelled it, or the run ended), in which case the work item that would
// go on in it is done.
func (s *Service) laneGone(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string) (bool, error) {
	running, err := tx.LaneRunning(ctx, st.run.ID, laneKey)
	if err != nil || running {
		return false, err
	}
	_, err = tx.CompleteWork(ctx, item)
	return true, err
}

// firstOfLane returns the first step of a lane.
func firstOfLane(st *runState, laneKey string) (*workflow.Step, error) {
	blockKey, lane := laneBlock(laneKey)
	block := st.def.Step(blockName(blockKey))
	var first *workflow.Step
	switch {
	case block == nil:
	case block.Foreach != nil:
		first = block.Foreach.Steps[0]
	case block.Parallel != nil:
		for _, b := range block.Parallel.Branches {
			if b.Name == lane {
				first = b.Steps[0]
			}
		}
	}
	if first == nil {
		return nil, fmt.Errorf("run %s has no lane %s in %s v%d", st.run.ID, laneKey, st.run.Workflow, st.run.Version)
	}
	return first, nil
}

// endLane ends a lane whose last step succeeded with output, for a worker
// holding item: the worker goes on with the foreach item that opens in the
// lane's place, if any; else its item is done.
func (s *Service) endLane(ctx context.Context, tx *postgres.Tx, item postgres.WorkItem, st *runState, laneKey string, output json.RawMessage) (*attempt, error) {
	block, ok, err := tx.EndLane(ctx, st.run.ID, laneKey, "succeeded", output, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		_, err := tx.CompleteWork(ctx, item)
		return nil, err
	}
	appendHistory(tx, st.run.ID, workflow.EventStepSucceeded, laneKey, nil, nil)
	return s.laneEnded(ctx, tx, st, laneKey, block, &item)
}

// failLane ends a lane because its step failedKey failed with stepErr. The
// block fails at once under fail_fast; otherwise the lane's failure is
// counted and its siblings go on.
func (s *Service) failLane(ctx context.Context, tx *postgres.Tx, st *runState, laneKey, failedKey string, stepErr json.RawMessage) error {
	laneErr := nestedError(fmt.Sprintf("step %s failed", failedKey), stepErr, map[string]any{"step": failedKey})
	block, ok, err := tx.EndLane(ctx, st.run.ID, laneKey, "failed", nil, laneErr)
	if err != nil || !ok {
		return err
	}
	appendHistory(tx, st.run.ID, workflow.EventStepFailed, laneKey, nil, map[string]any{"error": laneErr})
	if block.Status != "running" {
		return nil
	}
	blockKey, lane := laneBlock(laneKey)
	step := st.def.Step(blockName(blockKey))
	if onError(step) == workflow.ErrorFailFast {
		what := "branch " + lane
		if step.Foreach != nil {
			what = "item " + lane
		}
		return s.failBlock(ctx, tx, st, step, blockKey, block, nestedError(what+" failed", laneErr, map[string]any{"lane": laneKey}))
	}
	_, err = s.laneEnded(ctx, tx, st, laneKey, block, nil)
	return err
}

// blockName is the step name of a block's key.
func blockName(blockKey string) string {
	_, name := splitKey(blockKey)
	return name
}

// onError is a block's error policy.
func onError(block *workflow.Step) workflow.ErrorPolicy {
	if block.Parallel != nil {
		return block.Parallel.OnError
	}
	return block.Foreach.OnError
}

// laneEnded goes on after a lane of a running block ended: a foreach opens
// its next item, and the block ends once every lane has. A worker passes
// the work item it holds (else nil): it starts the next item with it, or
// the item is done.
func (s *Service) laneEnded(ctx context.Context, tx *postgres.Tx, st *runState, laneKey string, block postgres.BlockCounts, item *postgres.WorkItem) (*attempt, error) {
	if block.Status == "running" && block.Started < block.Total {
		opened, err := tx.OpenLanes(ctx, block.ID, 1, nil, item != nil)
		if err != nil {
			return nil, err
		}
		if item != nil && len(opened) == 1 {
			return s.goOnWith(ctx, tx, *item, st, opened[0])
		}
	}
	if item != nil {
		if ok, err := tx.CompleteWork(ctx, *item); err != nil || !ok {
			return nil, orLeaseLost(err, ok)
		}
	}
	if block.Status != "running" {
		return nil, nil
	}
	blockKey, _ := laneBlock(laneKey)
	if block.Ended < block.Total {
		// The lanes still open may all be waiting.
		_, err := tx.MarkRunWaiting(ctx, st.run.ID)
		return nil, err
	}
	return nil, s.finishBlock(ctx, tx, st, st.def.Step(blockName(blockKey)), blockKey, block)
}

// finishBlock ends a block all of whose lanes ended: it succeeds with its
// lanes' outputs merged, or fails when lanes failed that its on_error does
// not tolerate, or when merging fails; then the run goes on after it.
func (s *Service) finishBlock(ctx context.Context, tx *postgres.Tx, st *runState, step *workflow.Step, blockKey string, block postgres.BlockCounts) error {
	var output, patch json.RawMessage
	var problem json.RawMessage
	// The context as it is now, read when the block merges into it: other
	// lanes merged their context answers after this state was loaded.
	var before json.RawMessage
	if (step.Parallel != nil && step.Parallel.Merge == workflow.MergeDeepMerge) || (step.Foreach != nil && step.Foreach.CollectAs != "") {
		run, err := tx.GetRun(ctx, st.run.ID)
		if err != nil {
			return err
		}
		before = run.Context
	}
	if step.Parallel != nil {
		lanes, err := tx.Lanes(ctx, block.ID)
		if err != nil {
			return err
		}
		if output, patch, problem, err = joinBranches(step, lanes, before); err != nil {
			return err
		}
	} else {
		results, failures, err := tx.CollectLanes(ctx, block.ID)
		if err != nil {
			return err
		}
		if step.Foreach.OnError != workflow.ErrorCollect {
			failures = json.RawMessage("[]")
		}
		output, _ = json.Marshal(map[string]json.RawMessage{"results": results, "errors": failures}) // valid JSON always encodes
		if step.Foreach.CollectAs != "" {
			patch, _ = json.Marshal(map[string]json.RawMessage{step.Foreach.CollectAs: results})
		}
	}
	if problem == nil && len(output) > s.limits.MaxOutputBytes {
		problem = errorJSON(fmt.Sprintf("the step's merged output is %d bytes; the limit is %d", len(output), s.limits.MaxOutputBytes), 0)
	}
	if problem == nil && patch != nil {
		merged, err := tx.MergeRunContext(ctx, st.run.ID, patch)
		if err != nil {
			return err
		}
		if len(merged) > s.limits.MaxContextBytes {
			// Failing the block does not roll the merge back: put the
			// context back as it was.
			problem = errorJSON(fmt.Sprintf("merging the step's output into the context would make it larger than %d bytes", s.limits.MaxContextBytes), 0)
			if err := tx.SetRunContext(ctx, st.run.ID, before); err != nil {
				return err
			}
		} else if err := st.setContext(merged); err != nil {
			return err
		}
	}
	if problem != nil {
		return s.failBlock(ctx, tx, st, step, blockKey, block, problem)
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: block.ID, Attempt: block.Attempt, Status: "succeeded"}, "succeeded", output); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, st.run.ID, workflow.EventStepSucceeded, blockKey, &block.Attempt, nil)
	return tx.EnqueueWork(ctx, st.run.ID, postgres.WorkTarget{Kind: postgres.WorkAdvance, AfterStep: blockKey}, 0)
}

// joinBranches merges the outputs of a parallel step's branches, all of
// which ended, and for deep_merge the run's context as it is now. It
// returns the step's output and what to merge into the run's context, or
// the step's error: branches failed (under complete_all), or deep_merge met
// conflicting values.
func joinBranches(step *workflow.Step, lanes []postgres.Lane, runContext json.RawMessage) (output, patch, problem json.RawMessage, err error) {
	failed := map[string]json.RawMessage{}
	outputs := make([]json.RawMessage, len(lanes))
	names := make([]string, len(lanes))
	for i, l := range lanes {
		names[i] = step.Parallel.Branches[l.Index].Name
		outputs[i] = payloadOrNull(l.Output)
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

// failBlock fails a block: what still runs in its lanes is cancelled (their
// late results are ignored, their child runs cancelled), and the failure
// goes on outward.
func (s *Service) failBlock(ctx context.Context, tx *postgres.Tx, st *runState, step *workflow.Step, blockKey string, block postgres.BlockCounts, blockErr json.RawMessage) error {
	cancelled, err := tx.CancelStepTree(ctx, st.run.ID, block.ID)
	if err != nil {
		return err
	}
	for _, c := range cancelled {
		if c.Type == string(workflow.StepCallWorkflow) && len(c.Input) > 0 {
			if err := s.cancelStepChild(ctx, tx, workflow.StepExecution{ID: c.ID, RunID: st.run.ID, Key: c.Key, Input: c.Input}); err != nil {
				return err
			}
		}
	}
	if ok, err := tx.FinishStep(ctx, postgres.AttemptResult{StepExecutionID: block.ID, Attempt: block.Attempt, Status: "failed", Error: blockErr}, "failed", nil); err != nil || !ok {
		return orStale(err, ok)
	}
	appendHistory(tx, st.run.ID, workflow.EventStepFailed, blockKey, &block.Attempt, map[string]any{"error": blockErr, "cancelled": len(cancelled)})
	return s.propagateFailure(ctx, tx, st, blockKey, block.ID, blockErr, false)
}

// withCause extends message with the message of the error cause, if it
// has one.
func withCause(message string, cause json.RawMessage) string {
	var detail struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(cause, &detail) == nil && detail.Message != "" {
		message += ": " + detail.Message
	}
	return message
}

// nestedError is an error that wraps the error of what it is about, with its
// message extended by the inner one's.
func nestedError(message string, inner json.RawMessage, fields map[string]any) json.RawMessage {
	e := map[string]any{"message": withCause(message, inner), "error": json.RawMessage(payloadOrNull(inner))}
	for k, v := range fields {
		e[k] = v
	}
	b, _ := json.Marshal(e) // strings and valid JSON always encode
	return b
}
