package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/hive-swarm/hive/internal/config"
)

func TestModelsList(t *testing.T) {
	e := newTestEnv(t, (&script{n: 1}).handle)
	e.cfg.Swarms["deep"] = &config.Swarm{MaxDepth: 3}
	e.cfg.Swarms["alpha"] = &config.Swarm{MaxWorkers: 1}
	client := e.openAIClient()
	ctx := context.Background()

	var ids []string
	iter := client.Models.ListAutoPaging(ctx)
	for iter.Next() {
		m := iter.Current()
		if m.Object != "model" || m.OwnedBy != "hive" || m.Created == 0 {
			t.Errorf("model %+v", m)
		}
		ids = append(ids, m.ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"hive", "alpha", "deep", "fast"}; !slices.Equal(ids, want) {
		t.Fatalf("models %v, want %v", ids, want)
	}
	var raw struct {
		Object string `json:"object"`
		Data   []any  `json:"data"`
	}
	if resp := e.do("GET", "/v1/models", testToken, nil, &raw); resp.StatusCode != http.StatusOK || raw.Object != "list" || len(raw.Data) != 4 {
		t.Fatalf("GET /v1/models: %d %+v", resp.StatusCode, raw)
	}

	m, err := client.Models.Get(ctx, "fast")
	if err != nil || m.ID != "fast" || m.Object != "model" {
		t.Fatalf("get fast: %+v, %v", m, err)
	}
	if m, err := client.Models.Get(ctx, "hive"); err != nil || m.ID != "hive" {
		t.Fatalf("get hive: %+v, %v", m, err)
	}

	_, err = client.Models.Get(ctx, "gpt-nope")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("unknown model: %v", err)
	}

	// Like the rest of the API, the models need the token.
	if resp := e.do("GET", "/v1/models", "", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/models without the token: %d", resp.StatusCode)
	}
	if resp := e.do("GET", "/v1/models/hive", "wrong", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/models/hive with a wrong token: %d", resp.StatusCode)
	}
}
