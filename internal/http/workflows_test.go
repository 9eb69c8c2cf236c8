package http_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var contentHash = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func TestCreateWorkflowVersions(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// A new workflow is version 1, with a Location to read it back.
	res := b.do(t, http.MethodPost, "/v1/workflows", []byte(twoStepWorkflow))
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	require.Equal(t, "/v1/workflows/greet/versions/1", res.header.Get("Location"))
	var v1 struct {
		workflowVersion
		CreatedAt time.Time `json:"created_at"`
	}
	res.decode(t, &v1)
	require.Equal(t, "greet", v1.Name)
	require.Equal(t, 1, v1.Version)
	require.Regexp(t, contentHash, v1.ContentHash)
	require.WithinDuration(t, time.Now(), v1.CreatedAt, time.Minute)
	require.JSONEq(t, twoStepWorkflow, string(v1.Definition), "the stored definition means what was posted")

	got := b.do(t, http.MethodGet, res.header.Get("Location"), nil)
	require.Equal(t, http.StatusOK, got.status)
	require.JSONEq(t, string(res.body), string(got.body), "reading the Location gives the version created")

	// The same document again, however it is spelled, is the same version:
	// 200, no new version, no Location.
	respellings := []string{
		twoStepWorkflow,
		`{"steps":[{"url":"http://127.0.0.1:9000/lookup","type":"call","name":"lookup"},{"retry":{"max_attempts":5},"input":{"email":"${ steps.lookup.output.email }"},"type":"call","name":"send","url":"http://127.0.0.1:9000/send"}],"name":"greet"}`,
		"{\n\t\"name\" :\"greet\",\r\n \"steps\":[ {\"name\":\"lookup\",\"type\":\"call\",\"url\":\"http://127.0.0.1:9000/lookup\"} ,\n{\"name\":\"send\",\"type\":\"call\",\"url\":\"http://127.0.0.1:9000/send\",\"input\":{\"email\":\"${ steps.lookup.output.email }\"},\"retry\":{\"max_attempts\":5}}]}\n\n",
	}
	for i, doc := range respellings {
		res := b.do(t, http.MethodPost, "/v1/workflows", []byte(doc))
		require.Equal(t, http.StatusOK, res.status, "respelling %d: %s", i, truncate(res.body))
		require.Empty(t, res.header.Get("Location"), "respelling %d", i)
		var v workflowVersion
		res.decode(t, &v)
		require.Equal(t, 1, v.Version, "respelling %d", i)
		require.Equal(t, v1.ContentHash, v.ContentHash, "respelling %d", i)
	}

	// A changed definition is version 2.
	changed := workflowDef("greet", "http://127.0.0.1:9000/other")
	res = b.do(t, http.MethodPost, "/v1/workflows", []byte(changed))
	require.Equal(t, http.StatusCreated, res.status, "body: %s", truncate(res.body))
	require.Equal(t, "/v1/workflows/greet/versions/2", res.header.Get("Location"))
	var v2 workflowVersion
	res.decode(t, &v2)
	require.Equal(t, 2, v2.Version)
	require.NotEqual(t, v1.ContentHash, v2.ContentHash)

	// Posting version 1's document again returns version 1, not a third.
	require.Equal(t, 1, b.createWorkflow(t, twoStepWorkflow).Version)

	// The latest is 2; each version keeps its own definition.
	latest := b.do(t, http.MethodGet, "/v1/workflows/greet", nil)
	require.Equal(t, http.StatusOK, latest.status)
	var l workflowVersion
	latest.decode(t, &l)
	require.Equal(t, 2, l.Version)
	require.JSONEq(t, changed, string(l.Definition))
	for version, def := range map[int]string{1: twoStepWorkflow, 2: changed} {
		res := b.do(t, http.MethodGet, fmt.Sprintf("/v1/workflows/greet/versions/%d", version), nil)
		require.Equal(t, http.StatusOK, res.status)
		var v workflowVersion
		res.decode(t, &v)
		require.Equal(t, version, v.Version)
		require.JSONEq(t, def, string(v.Definition))
	}
	require.Equal(t, map[string]int{"greet": 2}, b.state(t).Versions)
}

// TestCreateWorkflowConcurrently posts the same new definition from many
// clients at once (exactly one creates it) and different definitions of one
// workflow at once (each gets its own version, without gaps).
func TestCreateWorkflowConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 12

	type answer struct {
		status  int
		version int
	}
	post := func(docs func(i int) string) []answer {
		answers := make([]answer, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var res response
				res, errs[i] = b.try(http.MethodPost, "/v1/workflows", []byte(docs(i)))
				var v workflowVersion
				if errs[i] == nil && res.status < 300 {
					errs[i] = json.Unmarshal(res.body, &v)
				}
				answers[i] = answer{res.status, v.Version}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		return answers
	}

	same := post(func(int) string { return workflowDef("same", "http://127.0.0.1:9000/x") })
	created := 0
	for _, a := range same {
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, a.status)
		require.Equal(t, 1, a.version)
		if a.status == http.StatusCreated {
			created++
		}
	}
	require.Equal(t, 1, created, "exactly one request creates the version")

	different := post(func(i int) string { return workflowDef("many", fmt.Sprintf("http://127.0.0.1:9000/%d", i)) })
	var versions []int
	for _, a := range different {
		require.Equal(t, http.StatusCreated, a.status)
		versions = append(versions, a.version)
	}
	sort.Ints(versions)
	for i, v := range versions {
		require.Equal(t, i+1, v, "versions are numbered without gaps or repeats: %v", versions)
	}
	require.Equal(t, map[string]int{"same": 1, "many": n}, b.state(t).Versions)
}

func TestListWorkflowsPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// An empty list is an empty array without a cursor.
	empty := getPage[workflowSummary](t, b, "/v1/workflows")
	require.Empty(t, empty.Items)
	require.Nil(t, empty.NextCursor)

	names := []string{"zeta", "alpha", "m_x", "9lives", "beta-2", "beta", "a"}
	for _, name := range names {
		b.createWorkflow(t, workflowDef(name, "http://127.0.0.1:9000/1"))
	}
	b.createWorkflow(t, workflowDef("beta", "http://127.0.0.1:9000/2"))
	want := append([]string(nil), names...)
	sort.Strings(want)

	for _, limit := range []int{1, 2, 3, 6, 7, 8, 1000} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			items := listAll[workflowSummary](t, b, "/v1/workflows", limit)
			var got []string
			for _, wf := range items {
				got = append(got, wf.Name)
				wantLatest := 1
				if wf.Name == "beta" {
					wantLatest = 2
				}
				require.Equal(t, wantLatest, wf.LatestVersion, wf.Name)
			}
			require.Equal(t, want, got, "every workflow once, ordered by name")
		})
	}
}

func TestListWorkflowVersionsPagination(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hashes := map[int]string{}
	for i := 1; i <= 5; i++ {
		v := b.createWorkflow(t, workflowDef("steady", fmt.Sprintf("http://127.0.0.1:9000/%d", i)))
		require.Equal(t, i, v.Version)
		hashes[i] = v.ContentHash
	}
	// Another workflow's versions must not show up.
	b.createWorkflow(t, workflowDef("other", "http://127.0.0.1:9000/x"))

	for _, limit := range []int{1, 2, 4, 5, 50} {
		t.Run(fmt.Sprint("limit=", limit), func(t *testing.T) {
			items := listAll[workflowVersion](t, b, "/v1/workflows/steady/versions", limit)
			var got []int
			for _, v := range items {
				got = append(got, v.Version)
				require.Equal(t, "steady", v.Name)
				require.Equal(t, hashes[v.Version], v.ContentHash)
				require.Empty(t, v.Definition, "a version summary has no definition")
			}
			require.Equal(t, []int{5, 4, 3, 2, 1}, got, "every version once, newest first")
		})
	}
}

func TestGetWorkflowNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.createWorkflow(t, twoStepWorkflow)
	for _, path := range []string{
		"/v1/workflows/nope",
		"/v1/workflows/nope/versions",
		"/v1/workflows/nope/versions/1",
		"/v1/workflows/greet/versions/2",
		"/v1/workflows/greet/versions/2147483647",
		"/v1/workflows/greet-",
	} {
		t.Run(path, func(t *testing.T) {
			requireProblem(t, b.do(t, http.MethodGet, path, nil), http.StatusNotFound)
		})
	}
}
