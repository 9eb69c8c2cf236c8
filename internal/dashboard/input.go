package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/workflow"
)

// waitingView is a step waiting for a person, as a form: built from the
// question's kind and, for a form, its JSON Schema's properties. The
// value a person gives is checked by the API's own validation, whose
// messages the form shows next to their fields.
type waitingView struct {
	Run      workflow.Run
	Step     string
	Type     string
	Deadline *time.Time
	Question *orchestrator.Question
	Fields   []formField
	// RawJSON is set when the form's schema has no simple properties to
	// make fields of: the value is typed as JSON.
	RawJSON     bool
	Action      string
	CSRF        string
	CallbackURL string
	Errors      []string // problems not of one field
	Done        string   // what the answer did, once given
}

type formField struct {
	Name        string
	Label       string
	Description string
	Input       string // text, number, checkbox, select, textarea
	Type        string // the schema's type
	Required    bool
	Options     []string
	Value       string
	Error       string
}

type schemaDoc struct {
	Type       string                    `json:"type"`
	Properties map[string]schemaProperty `json:"properties"`
	Required   []string                  `json:"required"`
}

type schemaProperty struct {
	Type        any    `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Enum        []any  `json:"enum"`
	Format      string `json:"format"`
}

// fieldsOf makes form fields of a schema's properties; false when a
// property is not a plain string, number, integer, boolean or enum.
func fieldsOf(schema json.RawMessage) ([]formField, bool) {
	var doc schemaDoc
	if err := json.Unmarshal(schema, &doc); err != nil || len(doc.Properties) == 0 {
		return nil, false
	}
	names := make([]string, 0, len(doc.Properties))
	for n := range doc.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	fields := make([]formField, 0, len(names))
	for _, n := range names {
		p := doc.Properties[n]
		typ, ok := p.Type.(string)
		if !ok {
			return nil, false
		}
		f := formField{Name: n, Label: n, Description: p.Description, Type: typ, Required: slices.Contains(doc.Required, n)}
		if p.Title != "" {
			f.Label = p.Title
		}
		switch {
		case len(p.Enum) > 0 && typ == "string":
			f.Input = "select"
			for _, e := range p.Enum {
				s, ok := e.(string)
				if !ok {
					return nil, false
				}
				f.Options = append(f.Options, s)
			}
		case typ == "string":
			f.Input = "text"
			switch p.Format {
			case "email":
				f.Input = "email"
			case "date":
				f.Input = "date"
			}
		case typ == "number" || typ == "integer":
			f.Input = "number"
		case typ == "boolean":
			f.Input = "checkbox"
		default:
			return nil, false
		}
		fields = append(fields, f)
	}
	return fields, true
}

func newWaitingView(run workflow.Run, w orchestrator.WaitingStep, csrf string, action *string) waitingView {
	v := waitingView{
		Run: run, Step: w.Step, Type: w.Type, Deadline: w.Deadline, Question: w.Question, CSRF: csrf, CallbackURL: w.CallbackURL,
		Action: "/runs/" + run.ID.String() + "/inputs/" + w.Step,
	}
	if action != nil {
		v.Action = *action
	}
	if w.Question != nil && w.Question.Kind == string(workflow.InputForm) {
		v.Fields, _ = fieldsOf(w.Question.Schema)
		v.RawJSON = v.Fields == nil
	}
	return v
}

// valueOf reads the answer a form posts as the JSON value the API takes;
// a field that cannot be read is a problem on its field.
func (v *waitingView) valueOf(r *http.Request) (json.RawMessage, bool) {
	q := v.Question
	var value any
	switch workflow.InputKind(q.Kind) {
	case workflow.InputApproval:
		switch r.PostFormValue("decision") {
		case "approve":
			value = true
		case "reject":
			value = false
		default:
			v.Errors = append(v.Errors, "Choose approve or reject.")
			return nil, false
		}
	case workflow.InputChoice:
		value = r.PostFormValue("choice")
	case workflow.InputText:
		value = r.PostFormValue("text")
	case workflow.InputForm:
		if v.RawJSON {
			raw := strings.TrimSpace(r.PostFormValue("json"))
			if !json.Valid([]byte(raw)) {
				v.Errors = append(v.Errors, "The value is not valid JSON.")
				return nil, false
			}
			return json.RawMessage(raw), true
		}
		obj := map[string]any{}
		ok := true
		for i := range v.Fields {
			f := &v.Fields[i]
			raw := r.PostFormValue("f." + f.Name)
			f.Value = raw
			switch f.Type {
			case "boolean":
				obj[f.Name] = raw == "on"
				continue
			case "number", "integer":
				if raw == "" {
					continue
				}
				n, err := strconv.ParseFloat(raw, 64)
				if err != nil {
					f.Error = "must be a number"
					ok = false
					continue
				}
				obj[f.Name] = n
			default:
				if raw == "" {
					continue // absent: the schema says whether it may be
				}
				obj[f.Name] = raw
			}
		}
		if !ok {
			return nil, false
		}
		value = obj
	}
	b, err := json.Marshal(value)
	if err != nil {
		v.Errors = append(v.Errors, "The value cannot be encoded.")
		return nil, false
	}
	return b, true
}

// showProblems puts the API's validation messages on the fields they name
// (/value/<field>), and the others above the form.
func (v *waitingView) showProblems(err error) {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return
	}
	if len(fe.Problems) == 0 {
		v.Errors = append(v.Errors, fe.Message)
	}
	for _, p := range fe.Problems {
		name := strings.TrimPrefix(strings.TrimPrefix(p.Path, "/value"), "/")
		placed := false
		for i := range v.Fields {
			if name != "" && (v.Fields[i].Name == name || strings.HasPrefix(name, v.Fields[i].Name+"/")) {
				v.Fields[i].Error = p.Message
				placed = true
			}
		}
		if !placed {
			v.Errors = append(v.Errors, p.Message)
		}
	}
}

// answerFields reads who answered and their comment, bounded.
func answerFields(r *http.Request) (by, comment string, ok bool) {
	by, comment = strings.TrimSpace(r.PostFormValue("by")), strings.TrimSpace(r.PostFormValue("comment"))
	return by, comment, len(by) <= 200 && len(comment) <= 2000 && utf8.ValidString(by) && utf8.ValidString(comment)
}

// answerInput answers a waiting step from the inbox or the run page.
func (d *Dashboard) answerInput(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRunID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A run's id is a UUID.")
		return
	}
	detail, err := d.api.GetRun(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	step := chi.URLParam(r, "step")
	i := slices.IndexFunc(detail.Waiting, func(w orchestrator.WaitingStep) bool { return w.Step == step && w.Question != nil })
	if i < 0 {
		d.renderError(w, r, http.StatusConflict, "Step "+step+" of this run does not wait for input (any more).")
		return
	}
	v := newWaitingView(detail.Run, detail.Waiting[i], d.csrfOf(r), nil)
	by, comment, ok := answerFields(r)
	if !ok {
		d.renderError(w, r, http.StatusRequestEntityTooLarge, "The name has at most 200 characters and the comment 2,000.")
		return
	}
	value, ok := v.valueOf(r)
	if ok {
		if _, err = d.api.GiveInput(r.Context(), id, step, orchestrator.Input{Value: value, By: by, Comment: comment}); err == nil {
			back(w, r, "/runs/"+id.String())
			return
		}
		if fault.KindOf(err) != fault.Invalid {
			d.fail(w, r, err)
			return
		}
		v.showProblems(err)
	}
	d.render(w, r, http.StatusUnprocessableEntity, "answer", "Answer "+step, v)
}

func (d *Dashboard) inboxPage(w http.ResponseWriter, r *http.Request) {
	items, err := d.api.Inbox(r.Context(), 100)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	views := make([]waitingView, len(items))
	for i, it := range items {
		views[i] = newWaitingView(it.Run, it.Wait, d.csrfOf(r), nil)
	}
	d.render(w, r, http.StatusOK, "inbox", "Inbox", views)
}

// renderCallback shows the form of the step a callback URL answers, on a
// page of its own (for a person who got the URL by e-mail).
func (d *Dashboard) renderCallback(w http.ResponseWriter, r *http.Request, token string, v *waitingView, done string) {
	if v == nil {
		view, err := d.callbackView(r, token)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		v = &view
	}
	v.Done = done
	status := http.StatusOK
	if len(v.Errors) > 0 || slices.ContainsFunc(v.Fields, func(f formField) bool { return f.Error != "" }) {
		status = http.StatusUnprocessableEntity
	}
	d.render(w, r, status, "callback", "Answer "+v.Step, v)
}

func (d *Dashboard) callbackView(r *http.Request, token string) (waitingView, error) {
	cs, err := d.api.DescribeCallback(r.Context(), token)
	if err != nil {
		return waitingView{}, err
	}
	if cs.Question == nil {
		return waitingView{}, fault.New(fault.Conflict, "this callback URL is a step's, not a question for a person")
	}
	action := "/callbacks/" + token
	run := workflow.Run{ID: cs.RunID, Workflow: cs.Workflow, Version: cs.Version}
	v := newWaitingView(run, orchestrator.WaitingStep{Step: cs.Step, Type: cs.Type, Deadline: cs.Deadline, Question: cs.Question}, "", &action)
	if cs.Status != "waiting" {
		v.Done = "This step is " + cs.Status + ": it takes no answer any more."
	}
	return v, nil
}

func (d *Dashboard) callbackPage(w http.ResponseWriter, r *http.Request) {
	d.renderCallback(w, r, chi.URLParam(r, "token"), nil, "")
}

// answerCallback answers a question through its callback URL's token, the
// answer's only credential, as POST /v1/callbacks/{token} does.
func (d *Dashboard) answerCallback(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, formLimit)
	token := chi.URLParam(r, "token")
	v, err := d.callbackView(r, token)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	by, comment, ok := answerFields(r)
	if !ok {
		d.renderError(w, r, http.StatusRequestEntityTooLarge, "The name has at most 200 characters and the comment 2,000.")
		return
	}
	value, ok := v.valueOf(r)
	if ok {
		cs, err := d.api.CompleteCallback(r.Context(), token, orchestrator.Callback{Input: orchestrator.Input{Value: value, By: by, Comment: comment}})
		if err == nil {
			d.renderCallback(w, r, token, &v, "Thank you: the answer was recorded (the step "+cs.Status+").")
			return
		}
		if fault.KindOf(err) != fault.Invalid {
			d.fail(w, r, err)
			return
		}
		v.showProblems(err)
	}
	d.renderCallback(w, r, token, &v, "")
}
