package server

import (
	"fmt"
	"net/http"
	"slices"
)

// The models of the OpenAI-compatible API are the swarm configurations:
// "hive" for the defaults and one per [swarms.NAME] table of hive.toml.

// modelView is an OpenAI model object.
type modelView struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelNames returns the swarms a chat completion may name: the
// defaults first, then the configured swarms in order.
func (s *Server) modelNames() []string {
	names := []string{}
	for name, sw := range s.cfg.Swarms {
		if sw != nil && name != DefaultSwarm {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return append([]string{DefaultSwarm}, names...)
}

func (s *Server) model(name string) modelView {
	return modelView{ID: name, Object: "model", Created: s.started.Unix(), OwnedBy: "hive"}
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	data := []modelView{}
	for _, name := range s.modelNames() {
		data = append(data, s.model(name))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !slices.Contains(s.modelNames(), id) {
		writeOpenAIError(w, http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model %q does not exist: use %q or a [swarms.NAME] of hive.toml", id, DefaultSwarm))
		return
	}
	writeJSON(w, http.StatusOK, s.model(id))
}
