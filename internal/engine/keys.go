package engine

import (
	"strconv"
	"strings"

	"github.com/durablehq/durable/internal/workflow"
)

// SplitKey splits a step key into its scope (the foreach items and loop
// iterations it is in, "" at the top) and the step's name.
func SplitKey(key string) (scope, name string) {
	i := strings.LastIndexByte(key, '.')
	return key[:i+1], key[i+1:]
}

// IsLaneKey reports whether a key names a lane rather than a step.
func IsLaneKey(key string) bool { return strings.HasSuffix(key, "]") }

// LaneBlock splits a lane key into its block's key and the lane's name (a
// branch name or an item index).
func LaneBlock(laneKey string) (blockKey, lane string) {
	i := strings.LastIndexByte(laneKey, '[')
	return laneKey[:i], laneKey[i+1 : len(laneKey)-1]
}

// BlockName is the step name of a block's (or any execution's) key.
func BlockName(key string) string {
	_, name := SplitKey(key)
	return name
}

// ScopeChain lists the scopes a scope is nested in, outermost first, and
// the scope itself: "", "ship[3].", "ship[3].box[0]." for "ship[3].box[0].".
func ScopeChain(scope string) []string {
	chain := []string{""}
	for i := 0; i+1 < len(scope); i++ {
		if scope[i] == ']' && scope[i+1] == '.' {
			chain = append(chain, scope[:i+2])
		}
	}
	return chain
}

// outerScope drops the innermost segment of a scope: "ship[3]." for
// "ship[3].poll[0].".
func outerScope(scope string) string {
	chain := ScopeChain(scope)
	if len(chain) < 2 {
		return ""
	}
	return chain[len(chain)-2]
}

// IterationScope is the scope of iteration i of the loop step named name in
// scope: "poll[2]." for the top-level loop poll.
func IterationScope(scope, name string, i int64) string {
	return scope + name + "[" + strconv.FormatInt(i, 10) + "]."
}

// Enclosure is a step that another step is nested in, seen from a step in a
// given scope.
type Enclosure struct {
	Step *workflow.Step
	// List is which of the step's lists holds the nested step (see
	// [workflow.Step.Children]): a parallel step's branch index.
	List int
	// Scope is the scope the enclosing step itself runs in; Key is its
	// execution's key.
	Scope, Key string
	// Parent is the key of the execution that the nested steps name as
	// their parent: a parallel branch's or a foreach item's lane, else
	// the enclosing step's own execution (a branch, a loop).
	Parent string
}

// Lane is the key of the lane the enclosure runs its nested steps in, ""
// for a step that opens no lanes.
func (e Enclosure) Lane() string {
	if e.Step.OpensLanes() {
		return e.Parent
	}
	return ""
}

// Enclosures lists the steps around the step named name in scope,
// innermost first.
func Enclosures(def *workflow.Definition, scope, name string) []Enclosure {
	var out []Enclosure
	inner := scope
	for p, list := def.Enclosing(name); p != nil; p, list = def.Enclosing(p.Name) {
		e := enclosure(p, list, inner)
		out = append(out, e)
		inner = e.Scope
	}
	return out
}

// enclosure describes p, holding a step of its list in scope inner.
func enclosure(p *workflow.Step, list int, inner string) Enclosure {
	e := Enclosure{Step: p, List: list, Scope: inner}
	if p.OpensScope() {
		e.Scope = outerScope(inner)
	}
	e.Key = e.Scope + p.Name
	switch {
	case p.Parallel != nil:
		e.Parent = e.Key + "[" + p.Parallel.Branches[list].Name + "]"
	case p.Foreach != nil:
		e.Parent = strings.TrimSuffix(inner, ".")
	default:
		e.Parent = e.Key
	}
	return e
}

// ParentKey is the key of the execution the step named name is nested in
// when in scope: its branch, loop or lane; "" at the top.
func ParentKey(def *workflow.Definition, scope, name string) string {
	p, list := def.Enclosing(name)
	if p == nil {
		return ""
	}
	return enclosure(p, list, scope).Parent
}

// LaneOf returns the key of the lane the step named name runs in when in
// scope, "" when it is in none: steps in lanes take turns on their run.
func LaneOf(def *workflow.Definition, scope, name string) string {
	for _, e := range Enclosures(def, scope, name) {
		if l := e.Lane(); l != "" {
			return l
		}
	}
	return ""
}

// ScopeOf is the scope of the position a work item names with key: a step's
// key, or a lane's key for the lane's first step.
func ScopeOf(def *workflow.Definition, key string) string {
	if !IsLaneKey(key) {
		scope, _ := SplitKey(key)
		return scope
	}
	blockKey, _ := LaneBlock(key)
	scope, name := SplitKey(blockKey)
	if block := def.Step(name); block != nil && block.Foreach != nil {
		return key + "."
	}
	return scope
}

// FirstOfLane returns the first step of a lane, nil when the definition has
// no such lane.
func FirstOfLane(def *workflow.Definition, laneKey string) *workflow.Step {
	blockKey, lane := LaneBlock(laneKey)
	block := def.Step(BlockName(blockKey))
	switch {
	case block == nil:
	case block.Foreach != nil:
		return block.Foreach.Steps[0]
	case block.Parallel != nil:
		for _, b := range block.Parallel.Branches {
			if b.Name == lane {
				return b.Steps[0]
			}
		}
	}
	return nil
}
