package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// archivedVersion is a workflow version as GET /v1/workflows/{name} and the
// archive endpoints answer it.
type archivedVersion struct {
	Name       string     `json:"name"`
	Version    int        `json:"version"`
	Archived   *bool      `json:"archived"`
	ArchivedAt *time.Time `json:"archived_at"`
}

type archivedSummary struct {
	Name       string     `json:"name"`
	Archived   *bool      `json:"archived"`
	ArchivedAt *time.Time `json:"archived_at"`
}

func (b *testBundle) setArchived(t *testing.T, name string, archived bool) archivedVersion {
	t.Helper()
	path := "/v1/workflows/" + name + "/unarchive"
	if archived {
		path = "/v1/workflows/" + name + "/archive"
	}
	res := b.do(t, http.MethodPost, path, nil)
	require.Equal(t, http.StatusOK, res.status, "POST %s: %s", path, truncate(res.body))
	var v archivedVersion
	res.decode(t, &v)
	require.NotNil(t, v.Archived, "archived is always shown")
	return v
}

func TestDeleteRunRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	pending := b.startRun(t, `{"workflow": "greet"}`)
	refuse(t, b, "", []badRequest{
		{name: "not a uuid", method: http.MethodDelete, path: "/v1/runs/not-a-uuid", status: 400, paths: []string{"path:id"}},
		{name: "a uuid with junk", method: http.MethodDelete, path: "/v1/runs/" + pending.ID + "x", status: 400, paths: []string{"path:id"}},
		{name: "a NUL", method: http.MethodDelete, path: "/v1/runs/%00", status: 400, paths: []string{"path:id"}},
		{name: "a huge id", method: http.MethodDelete, path: "/v1/runs/" + strings.Repeat("a", 10_000), status: 400, paths: []string{"path:id"}},
		{name: "a path traversal", method: http.MethodDelete, path: "/v1/runs/..%2F..%2Fworkflows", status: 400, paths: []string{"path:id"}},
		{name: "unknown", method: http.MethodDelete, path: "/v1/runs/" + uuid.NewString(), status: 404},
		{name: "not finished", method: http.MethodDelete, path: "/v1/runs/" + pending.ID, status: 409},
	}, func(t *testing.T) {
		require.Equal(t, "pending", b.getRun(t, pending.ID).Status)
	})
	res := b.do(t, http.MethodDelete, "/v1/runs/"+pending.ID, nil)
	p := requireProblem(t, res, http.StatusConflict)
	require.Equal(t, "urn:durable:problem:conflict", p.Type)
	require.Contains(t, p.Detail, "is pending: only a finished run can be deleted")
}

func TestDeleteRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	kept := b.startRun(t, `{"workflow": "greet"}`)
	r := b.startRun(t, `{"workflow": "greet"}`)
	res := b.do(t, http.MethodPost, "/v1/runs/"+r.ID+"/cancel", []byte(`{"reason": "to delete it"}`))
	require.Equal(t, http.StatusOK, res.status, truncate(res.body))
	require.NotEmpty(t, b.history(t, r.ID))

	res = b.do(t, http.MethodDelete, "/v1/runs/"+r.ID, nil)
	require.Equal(t, http.StatusNoContent, res.status, truncate(res.body))
	require.Empty(t, res.body)
	for _, path := range []string{"/v1/runs/" + r.ID, "/v1/runs/" + r.ID + "/steps", "/v1/runs/" + r.ID + "/history"} {
		requireProblem(t, b.do(t, http.MethodGet, path, nil), http.StatusNotFound)
	}
	requireProblem(t, b.do(t, http.MethodDelete, "/v1/runs/"+r.ID, nil), http.StatusNotFound)
	require.Equal(t, []string{kept.ID}, b.state(t).Runs, "only the deleted run is gone")
}

func TestArchiveRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	var tests []badRequest
	for _, action := range []string{"archive", "unarchive"} {
		tests = append(tests,
			badRequest{name: action + " a bad name", path: "/v1/workflows/Bad%20Name/" + action, status: 400, paths: []string{"path:name"}},
			badRequest{name: action + " a name too long", path: "/v1/workflows/" + strings.Repeat("a", 129) + "/" + action, status: 400, paths: []string{"path:name"}},
			badRequest{name: action + " a NUL", path: "/v1/workflows/a%00/" + action, status: 400, paths: []string{"path:name"}},
			badRequest{name: action + " an unknown workflow", path: "/v1/workflows/nope/" + action, status: 404},
		)
	}
	tests = append(tests,
		badRequest{name: "list archived=maybe", method: http.MethodGet, path: "/v1/workflows?archived=maybe", status: 400, paths: []string{"query:archived"}},
		badRequest{name: "list archived=1;DROP", method: http.MethodGet, path: "/v1/workflows?archived=true%27%3B%20DROP%20TABLE%20workflows", status: 400, paths: []string{"query:archived"}},
		// A cursor names its list: one of the list of archived workflows is
		// not one of the others'.
		badRequest{name: "a cursor of the other list", method: http.MethodGet, path: "/v1/workflows?cursor=" + forgedCursor(`{"l":"workflows:archived","n":"a"}`), status: 400, paths: []string{"query:cursor"}},
	)
	refuse(t, b, "", tests, func(t *testing.T) {
		v := b.setArchived(t, "greet", false)
		require.False(t, *v.Archived)
	})
}

func TestArchiveWorkflow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	b.createWorkflow(t, workflowDef("other", "http://127.0.0.1:9000/o"))
	inFlight := b.startRun(t, `{"workflow": "greet"}`)

	v := b.setArchived(t, "greet", true)
	require.True(t, *v.Archived)
	require.NotNil(t, v.ArchivedAt)
	again := b.setArchived(t, "greet", true)
	require.Equal(t, v.ArchivedAt, again.ArchivedAt, "archiving an archived workflow changes nothing")

	res := b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet"}`))
	p := requireProblem(t, res, http.StatusConflict)
	require.Equal(t, "urn:durable:problem:conflict", p.Type)
	require.Contains(t, p.Detail, `workflow "greet" is archived`)
	res = b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet", "version": 1}`))
	requireProblem(t, res, http.StatusConflict)
	require.Equal(t, "pending", b.getRun(t, inFlight.ID).Status, "runs in flight are left alone")

	var got archivedVersion
	b.do(t, http.MethodGet, "/v1/workflows/greet", nil).decode(t, &got)
	require.True(t, *got.Archived)
	require.Equal(t, v.ArchivedAt, got.ArchivedAt)
	b.do(t, http.MethodGet, "/v1/workflows/greet/versions/1", nil).decode(t, &got)
	require.True(t, *got.Archived, "every version shows its workflow's archive")

	listed := listAll[archivedSummary](t, b, "/v1/workflows", 1)
	require.Len(t, listed, 1, "archived workflows are hidden")
	require.Equal(t, "other", listed[0].Name)
	require.False(t, *listed[0].Archived)
	archived := listAll[archivedSummary](t, b, "/v1/workflows?archived=true", 1)
	require.Len(t, archived, 1)
	require.Equal(t, "greet", archived[0].Name)
	require.True(t, *archived[0].Archived)
	require.Equal(t, v.ArchivedAt, archived[0].ArchivedAt)

	// A new version of an archived workflow stays archived.
	res = b.do(t, http.MethodPost, "/v1/workflows", []byte(workflowDef("greet", "http://127.0.0.1:9000/v2")))
	require.Equal(t, http.StatusCreated, res.status, truncate(res.body))
	res.decode(t, &got)
	require.Equal(t, 2, got.Version)
	require.True(t, *got.Archived)
	requireProblem(t, b.do(t, http.MethodPost, "/v1/runs", []byte(`{"workflow": "greet"}`)), http.StatusConflict)

	v = b.setArchived(t, "greet", false)
	require.False(t, *v.Archived)
	require.Nil(t, v.ArchivedAt)
	require.False(t, *b.setArchived(t, "greet", false).Archived, "unarchiving twice changes nothing")
	b.startRun(t, `{"workflow": "greet"}`)
	require.Len(t, listAll[archivedSummary](t, b, "/v1/workflows", 10), 2)
	require.Empty(t, listAll[archivedSummary](t, b, "/v1/workflows?archived=true", 10))
}
