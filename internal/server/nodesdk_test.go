package server

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeSDK is where the official OpenAI Node SDK is installed for
// TestOpenAINodeSDK (scripts/test.sh runs npm ci there when npm exists).
const nodeSDK = "testdata/node-sdk"

// runNodeSDK runs testdata/node-sdk/sdk.mjs in mode against e and decodes
// what it printed into out.
func (e *testEnv) runNodeSDK(mode string, out any) {
	e.t.Helper()
	cmd := exec.Command("node", "sdk.mjs", mode)
	cmd.Dir = nodeSDK
	cmd.Env = append(os.Environ(), "HIVE_URL="+e.srv.URL+"/v1", "HIVE_TOKEN="+testToken, "OPENAI_LOG=warn")
	cmd.Stderr = tWriter{e.t}
	stdout, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("node sdk.mjs %s: %v; printed %s", mode, err, stdout)
	}
	e.t.Logf("node sdk.mjs %s: %s", mode, stdout)
	if err := json.Unmarshal(stdout, out); err != nil {
		e.t.Fatalf("node sdk.mjs %s printed %q: %v", mode, stdout, err)
	}
}

type nodeFailure struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// TestOpenAINodeSDK drives hive serve with the official OpenAI Node SDK,
// at its defaults (two retries of a 5xx): the models list, chat
// completions, a failing swarm answered once, and tries that time out
// answered from one run.
func TestOpenAINodeSDK(t *testing.T) {
	// scripts/test.sh installs both; a missing peer is a failure, not a pass.
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("no node: the OpenAI Node SDK cannot run (scripts/test.sh installs nodejs)")
	}
	if _, err := os.Stat(filepath.Join(nodeSDK, "node_modules", "openai", "package.json")); err != nil {
		t.Fatal("the OpenAI Node SDK is not installed: npm ci --prefix internal/server/" + nodeSDK + " (scripts/test.sh does it)")
	}

	t.Run("models", func(t *testing.T) {
		e := newTestEnv(t, (&script{n: 1}).handle)
		var got struct {
			IDs []string `json:"ids"`
			One struct {
				ID      string `json:"id"`
				Object  string `json:"object"`
				OwnedBy string `json:"owned_by"`
			} `json:"one"`
			Unknown *nodeFailure `json:"unknown"`
			Thrown  *nodeFailure `json:"thrown"`
		}
		e.runNodeSDK("models", &got)
		if got.Thrown != nil || !slices.Equal(got.IDs, []string{"hive", "fast"}) || got.One.ID != "fast" || got.One.Object != "model" || got.One.OwnedBy != "hive" {
			t.Fatalf("models: %+v", got)
		}
		if got.Unknown == nil || got.Unknown.Status != 404 || got.Unknown.Code != "model_not_found" || got.Unknown.Name != "NotFoundError" {
			t.Fatalf("unknown model: %+v", got.Unknown)
		}
	})

	t.Run("chat", func(t *testing.T) {
		e := newTestEnv(t, (&script{n: 2}).handle)
		var got struct {
			Answer, Run, Streamed string
			Thrown                *nodeFailure
		}
		e.runNodeSDK("chat", &got)
		want := "2 reports: report of t-0; report of t-1"
		if got.Thrown != nil || got.Answer != want || got.Streamed != want || got.Run == "" {
			t.Fatalf("chat: %+v", got)
		}
		if n := e.runCount(); n != 2 {
			t.Fatalf("%d runs, want 2", n)
		}
	})

	t.Run("failing swarm", func(t *testing.T) {
		e := newTestEnv(t, failing)
		var got struct {
			Error, Thrown *nodeFailure
			Tries         int
		}
		e.runNodeSDK("fail", &got)
		if got.Tries != 1 || got.Error == nil || got.Error.Status != 500 || got.Error.Code != "run_failed" || got.Error.Name != "InternalServerError" {
			t.Fatalf("failing swarm: %+v", got)
		}
		if n := e.runCount(); n != 1 {
			t.Fatalf("the SDK's one request started %d runs, want 1", n)
		}
	})

	t.Run("timeouts", func(t *testing.T) {
		e := newTestEnv(t, (&script{n: 1, worker: 700 * time.Millisecond}).handle)
		var got struct {
			Answer, Run string
			Thrown      *nodeFailure
			Tries       int
		}
		e.runNodeSDK("timeout", &got)
		if got.Thrown != nil || !strings.HasPrefix(got.Answer, "1 reports") || got.Tries < 2 {
			t.Fatalf("timeouts: %+v", got)
		}
		if n := e.runCount(); n != 1 {
			t.Fatalf("the SDK's tries started %d runs, want 1", n)
		}
	})
}
