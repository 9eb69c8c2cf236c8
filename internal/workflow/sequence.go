package workflow

// place is where a step stands: the list of steps it is in, its index
// there, and the step that list belongs to (nil at the top level).
type place struct {
	list   []*Step
	index  int
	parent *Step
}

// places maps every step name to its place, built once when sealed.
func buildPlaces(steps []*Step, parent *Step, out map[string]place) {
	for i, s := range steps {
		out[s.Name] = place{list: steps, index: i, parent: parent}
		for _, nested := range s.Children() {
			buildPlaces(nested, s, out)
		}
	}
}

// Successor returns the step that runs after the step named name has
// finished, and the enclosing steps whose nested steps end with it
// (innermost first): when the last step of a branch's case finishes, the
// branch finishes too, and the run goes on after the branch. next is nil
// when the run has no step left. An empty name asks for the run's first
// step.
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
