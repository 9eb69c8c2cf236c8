package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/durablehq/durable/internal/engine"
	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/orchestrator"
	"github.com/durablehq/durable/internal/workflow"
)

// callerOf is who a request's session acts as, recorded with what it
// does, as the REST API records its callers.
func (d *Dashboard) callerOf(r *http.Request) string {
	if ss, ok := r.Context().Value(ctxKey{}).(session); ok {
		return d.sessions.caller(ss)
	}
	return "anonymous"
}

// retryForm is the run page's retry form: what was typed, and the API's
// problems on the fields they name.
type retryForm struct {
	Steps    []string // the definition's top-level steps, to rerun from
	Input    string
	Context  string
	FromStep string
	Reason   string
	Errors   map[string]string // "input", "context", "from_step" → message
	Message  string            // a problem of no field (a conflict)
}

// topLevelSteps reads the names of a definition's top-level steps: the
// ones a retry can rerun from.
func topLevelSteps(def json.RawMessage) []string {
	var doc struct {
		Steps []struct {
			Name string `json:"name"`
		} `json:"steps"`
	}
	if json.Unmarshal(def, &doc) != nil {
		return nil
	}
	names := make([]string, 0, len(doc.Steps))
	for _, s := range doc.Steps {
		names = append(names, s.Name)
	}
	return names
}

func (d *Dashboard) newRetryForm(ctx context.Context, run workflow.Run) (*retryForm, error) {
	if !engine.RunRetryable(run.Status) {
		return nil, nil
	}
	v, err := d.api.GetWorkflowVersion(ctx, run.Workflow, run.Version)
	if err != nil {
		return nil, err
	}
	return &retryForm{Steps: topLevelSteps(v.Definition), Errors: map[string]string{}}, nil
}

// showProblems puts a use case's problems next to the fields they name.
func (f *retryForm) showProblems(err error) {
	var fe *fault.Error
	if !errors.As(err, &fe) {
		return
	}
	if len(fe.Problems) == 0 {
		f.Message = fe.Message
	}
	for _, p := range fe.Problems {
		field := strings.TrimPrefix(p.Path, "/")
		if _, ok := map[string]bool{"input": true, "context": true, "from_step": true}[field]; ok {
			f.Errors[field] = p.Message
			continue
		}
		f.Message = strings.TrimSpace(f.Message + " " + p.Message)
	}
}

// patchOf reads a merge patch typed in a textarea: "" is no edit.
func patchOf(text string) (json.RawMessage, bool) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, true
	}
	return json.RawMessage(text), json.Valid([]byte(text))
}

// retryRun retries a run from its page, as POST /v1/runs/{id}/retry does;
// a refusal shows the page again with the API's problems on their fields.
func (d *Dashboard) retryRun(w http.ResponseWriter, r *http.Request) {
	id, ok := pathRunID(r)
	if !ok {
		d.renderError(w, r, http.StatusNotFound, "A run's id is a UUID.")
		return
	}
	data, err := d.runData(r.Context(), id, d.csrfOf(r))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	f := data.Retry
	if f == nil {
		f = &retryForm{Errors: map[string]string{}}
		data.Retry = f
	}
	f.Input, f.Context = r.PostFormValue("input"), r.PostFormValue("context")
	f.FromStep, f.Reason = r.PostFormValue("from_step"), strings.TrimSpace(r.PostFormValue("reason"))
	status := http.StatusUnprocessableEntity
	input, inputOK := patchOf(f.Input)
	runContext, contextOK := patchOf(f.Context)
	switch {
	case !inputOK:
		f.Errors["input"] = "not valid JSON (a JSON Merge Patch of the input, or empty)"
	case !contextOK:
		f.Errors["context"] = "not valid JSON (a JSON Merge Patch of the context, or empty)"
	case len(f.Reason) > 1000 || !utf8.ValidString(f.Reason):
		f.Errors["reason"] = "at most 1,000 characters of text"
	default:
		_, err = d.api.RetryRun(r.Context(), id, orchestrator.RetryRun{
			Input: input, Context: runContext, FromStep: f.FromStep, Reason: f.Reason, By: d.callerOf(r),
		})
		if err == nil {
			back(w, r, "/runs/"+id.String())
			return
		}
		switch fault.KindOf(err) {
		case fault.Invalid, fault.Conflict:
			if fault.KindOf(err) == fault.Conflict {
				status = http.StatusConflict
			}
			f.showProblems(err)
		default:
			d.fail(w, r, err)
			return
		}
	}
	d.render(w, r, status, "run", "Run "+id.String(), data)
}

// bulkData is the page of a bulk action: its dry-run count to confirm,
// or what happened to each selected run.
type bulkData struct {
	Kind string
	// FilterQuery is the filters as URL parameters: the confirm form's
	// hidden fields; Query the same encoded, for the way back.
	FilterQuery url.Values
	Query       string
	Reason      string
	Matched     int64
	Results     []bulkResult
	Problems    []string
	CSRF        string
}

type bulkResult struct {
	Run   string
	Error string
}

func bulkKind(r *http.Request) (string, bool) {
	k := r.PostFormValue("kind")
	return k, k == workflow.OperationCancel || k == workflow.OperationRetry
}

// bulkRuns acts on the runs a list's filters match: without confirm, it
// shows how many that is (a dry run); with it, it creates the operation
// that workers carry out and shows its progress.
func (d *Dashboard) bulkRuns(w http.ResponseWriter, r *http.Request) {
	kind, ok := bulkKind(r)
	if !ok {
		d.renderError(w, r, http.StatusBadRequest, "A bulk action is cancel or retry.")
		return
	}
	rf, problems := parseRunFilter(r.PostForm)
	data := bulkData{Kind: kind, FilterQuery: rf.query(), Query: rf.query().Encode(), Reason: strings.TrimSpace(r.PostFormValue("reason")), Problems: problems, CSRF: d.csrfOf(r)}
	if len(data.Reason) > 1000 || !utf8.ValidString(data.Reason) {
		data.Problems = append(data.Problems, "reason: at most 1,000 characters of text")
	}
	if len(data.Problems) > 0 {
		d.render(w, r, http.StatusBadRequest, "bulk", "Bulk "+kind, data)
		return
	}
	b := orchestrator.Bulk{Kind: kind, Filter: rf.filter, Reason: data.Reason, By: d.callerOf(r)}
	if r.PostFormValue("confirm") == "" {
		n, err := d.api.CountBulk(r.Context(), b)
		if err != nil {
			d.bulkFailed(w, r, data, err)
			return
		}
		data.Matched = n
		d.render(w, r, http.StatusOK, "bulk", "Bulk "+kind, data)
		return
	}
	op, err := d.api.CreateOperation(r.Context(), b)
	if err != nil {
		d.bulkFailed(w, r, data, err)
		return
	}
	back(w, r, "/operations/"+op.ID.String())
}

// bulkFailed shows a refused bulk request's problems (an empty filter)
// on its page.
func (d *Dashboard) bulkFailed(w http.ResponseWriter, r *http.Request, data bulkData, err error) {
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Invalid {
		d.fail(w, r, err)
		return
	}
	data.Problems = append(data.Problems, fe.Message)
	for _, p := range fe.Problems {
		data.Problems = append(data.Problems, p.Path+": "+p.Message)
	}
	d.render(w, r, http.StatusUnprocessableEntity, "bulk", "Bulk "+data.Kind, data)
}

// selectedRuns cancels or retries the runs ticked on a page of the list,
// each directly: they are at most a page.
func (d *Dashboard) selectedRuns(w http.ResponseWriter, r *http.Request) {
	kind, ok := bulkKind(r)
	if !ok {
		d.renderError(w, r, http.StatusBadRequest, "A bulk action is cancel or retry.")
		return
	}
	ids := r.PostForm["run"]
	if len(ids) == 0 || len(ids) > runsPageSize {
		d.renderError(w, r, http.StatusBadRequest, "Select between 1 and 50 runs.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if len(reason) > 1000 || !utf8.ValidString(reason) {
		d.renderError(w, r, http.StatusRequestEntityTooLarge, "A reason has at most 1,000 characters.")
		return
	}
	runs := make([]uuid.UUID, 0, len(ids))
	for _, s := range ids {
		id, err := uuid.Parse(s)
		if err != nil {
			d.renderError(w, r, http.StatusBadRequest, "A run's id is a UUID.")
			return
		}
		runs = append(runs, id)
	}
	data := bulkData{Kind: kind, CSRF: d.csrfOf(r)}
	status := http.StatusOK
	for _, id := range runs {
		var err error
		if kind == workflow.OperationCancel {
			_, err = d.api.CancelRun(r.Context(), id, reason)
		} else {
			_, err = d.api.RetryRun(r.Context(), id, orchestrator.RetryRun{Reason: reason, By: d.callerOf(r)})
		}
		res := bulkResult{Run: id.String()}
		if err != nil {
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Kind == fault.Internal {
				d.fail(w, r, err)
				return
			}
			res.Error = fe.Message
			status = http.StatusMultiStatus
		}
		data.Results = append(data.Results, res)
	}
	d.render(w, r, status, "bulk", "Bulk "+kind, data)
}

func (d *Dashboard) operation(w http.ResponseWriter, r *http.Request) (workflow.Operation, bool) {
	id, err := uuid.Parse(chi.URLParam(r, "id"))
	if err != nil {
		d.renderError(w, r, http.StatusNotFound, "An operation's id is a UUID.")
		return workflow.Operation{}, false
	}
	op, err := d.api.GetOperation(r.Context(), id)
	if err != nil {
		d.fail(w, r, err)
		return workflow.Operation{}, false
	}
	return op, true
}

type operationData struct {
	Op       workflow.Operation
	Finished bool
	Query    string // the operation's filter as the run list's URL
}

func newOperationData(op workflow.Operation) operationData {
	rf := runFilter{Workflow: op.Filter.Workflow, Statuses: map[string]bool{}}
	for _, s := range op.Filter.Statuses {
		rf.Statuses[string(s)] = true
	}
	if op.Filter.Parent != nil {
		rf.Parent = op.Filter.Parent.String()
	}
	if op.Filter.CreatedAfter != nil {
		rf.CreatedAfter = op.Filter.CreatedAfter.UTC().Format(datetimeLocal)
	}
	if op.Filter.CreatedBefore != nil {
		rf.CreatedBefore = op.Filter.CreatedBefore.UTC().Format(datetimeLocal)
	}
	finished := op.State != workflow.OperationPending && op.State != workflow.OperationRunning
	return operationData{Op: op, Finished: finished, Query: rf.query().Encode()}
}

// operationPage shows a bulk operation's progress; the page polls its
// progress part until the operation has finished.
func (d *Dashboard) operationPage(w http.ResponseWriter, r *http.Request) {
	op, ok := d.operation(w, r)
	if !ok {
		return
	}
	d.render(w, r, http.StatusOK, "operation", "Operation "+op.ID.String(), newOperationData(op))
}

func (d *Dashboard) operationProgress(w http.ResponseWriter, r *http.Request) {
	op, ok := d.operation(w, r)
	if !ok {
		return
	}
	html, err := d.fragment("operation", "progress", newOperationData(op))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(html))
}
