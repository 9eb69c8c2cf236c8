package http

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/durablehq/durable/internal/fault"
)

// Cursors are opaque to clients: base64url of a small JSON object naming
// the list they belong to and the position of the last item of a page.
type cursor struct {
	List string `json:"l"`
	// Time and ID, or Name, or Seq: the sort key of the last item.
	Time string `json:"t,omitempty"`
	ID   string `json:"i,omitempty"`
	Name string `json:"n,omitempty"`
	Seq  int64  `json:"s,omitempty"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of strings and an int cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads the cursor query parameter, which must belong to list.
// It returns nil for the first page.
func decodeCursor(r *http.Request, list string) (*cursor, error) {
	raw := r.URL.Query().Get("cursor")
	if raw == "" {
		return nil, nil
	}
	invalid := fault.WithProblems(fault.Malformed, "the cursor is not valid", []fault.Problem{{Path: "query:cursor", Message: "not a cursor of this list; pass next_cursor from the previous page"}})
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, invalid
	}
	var c cursor
	if err := json.Unmarshal(b, &c); err != nil || c.List != list {
		return nil, invalid
	}
	return &c, nil
}

// defaultLimit is the page size when the client names none; the OpenAPI
// document bounds what it may name.
const defaultLimit = 50

func pageLimit(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || n < 1 || n > 1000 {
		return defaultLimit
	}
	return n
}

// listByName answers a page of a list sorted by name (workflows,
// schedules): fetch reads up to limit items after a name, convert shapes
// each for the answer, and name gives the sort key of an answer's item.
func listByName[T, J any](s *Server, w http.ResponseWriter, r *http.Request, list string,
	fetch func(ctx context.Context, after string, limit int) ([]T, error), convert func(T) J, name func(J) string) {
	c, err := decodeCursor(r, list)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after := ""
	if c != nil {
		after = c.Name
	}
	limit := pageLimit(r)
	items, err := fetch(r.Context(), after, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]J, len(items))
	for i, it := range items {
		out[i] = convert(it)
	}
	writeJSON(w, http.StatusOK, page(out, limit, func(item J) cursor {
		return cursor{List: list, Name: name(item)}
	}))
}
