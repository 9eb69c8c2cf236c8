package workflow

// place is where a step stands: the list of steps it is in, its index
// there, the step that list belongs to (nil at the top level) and which of
// that step's lists it is (see [Step.Children]).
type place struct {
	list   []*Step
	index  int
	parent *Step
	nested int
}

// places maps every step name to its place, built once when sealed.
func buildPlaces(steps []*Step, parent *Step, nested int, out map[string]place) {
	for i, s := range steps {
		out[s.Name] = place{list: steps, index: i, parent: parent, nested: nested}
		for j, list := range s.Children() {
			buildPlaces(list, s, j, out)
		}
	}
}

// Enclosing returns the step that the step named name is nested in (nil at
// the top level) and which of its step lists holds it: the index into
// [Step.Children] — for a parallel step, the branch's index.
func (d *Definition) Enclosing(name string) (parent *Step, list int) {
	p := d.places[name]
	return p.parent, p.nested
}

// HasLanes reports whether the definition has parallel or foreach steps,
// whose lanes run side by side.
func (d *Definition) HasLanes() bool { return d.lanes }

// OpensLanes reports whether a step runs lanes side by side: a parallel
// step's branches or a foreach step's items.
func (s *Step) OpensLanes() bool { return s.Parallel != nil || s.Foreach != nil }

// OpensScope reports whether the steps nested in s run once per foreach
// item or loop iteration, so that their executions' keys are qualified by
// the item or iteration: "ship[3].label", "poll[2].check". A loop opens a
// scope but no lanes: its iterations run one after another.
func (s *Step) OpensScope() bool { return s.Foreach != nil || s.Loop != nil }

// Successor returns the step that runs after the step named name has
// finished, and the enclosing steps whose nested steps end with it
// (innermost first): when the last step of a branch's case finishes, the
// branch finishes too, and the run goes on after the branch. next is nil
// when the run has no step left. An empty name asks for the run's first
// step. A loop in ended has only ended an iteration: the caller asks
// [LoopStep.Continue] whether it runs another, from its first step, before
// going on to next.
func (d *Definition) Successor(name string) (next *Step, ended []*Step) {
	if name == "" {
		return d.Steps[0], nil
	}
	p, ok := d.places[name]
	for ok {
		if p.index+1 < len(p.list) {
			return p.list[p.index+1], ended
		}
		if p.parent == nil {
			return nil, ended
		}
		ended = append(ended, p.parent)
		p, ok = d.places[p.parent.Name]
	}
	return nil, ended
}
