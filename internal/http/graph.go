package http

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/durablehq/durable/internal/fault"
	"github.com/durablehq/durable/internal/graph"
)

// graphContentTypes maps each graph format to the media type it is served
// as. Mermaid has no registered media type; it is plain text.
var graphContentTypes = map[string]string{
	"dot":       "text/vnd.graphviz; charset=utf-8",
	"mermaid":   "text/plain; charset=utf-8",
	"cytoscape": "application/json",
}

// graphFormat reads the format query parameter; the default is mermaid.
// The validator has refused other values already.
func graphFormat(r *http.Request) (string, error) {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "mermaid"
	}
	if _, ok := graphContentTypes[format]; !ok {
		return "", fault.WithProblems(fault.Malformed, "the graph format is not valid", []fault.Problem{{Path: "query:format", Message: "must be dot, mermaid or cytoscape"}})
	}
	return format, nil
}

// writeGraph answers with g rendered in format.
func (s *Server) writeGraph(w http.ResponseWriter, r *http.Request, g *graph.Graph, format string) {
	var body []byte
	switch format {
	case "dot":
		body = []byte(graph.DOT(g))
	case "mermaid":
		body = []byte(graph.Mermaid(g))
	default:
		b, err := graph.Cytoscape(g)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		body = append(b, '\n')
	}
	w.Header().Set("Content-Type", graphContentTypes[format])
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *Server) getWorkflowGraph(w http.ResponseWriter, r *http.Request) {
	format, err := graphFormat(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		if version, err = parseVersion(v, "query:version"); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	g, err := s.svc.WorkflowGraph(r.Context(), chi.URLParam(r, "name"), version)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeGraph(w, r, g, format)
}

func (s *Server) getRunGraph(w http.ResponseWriter, r *http.Request) {
	format, err := graphFormat(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := pathID(r, "run")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := s.svc.RunGraph(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeGraph(w, r, g, format)
}
