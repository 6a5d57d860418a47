package journal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/secret"
)

// TestRedact checks that no secret reaches the journal's file, whatever
// the write: a run's task and answer, nodes, events, steps, artifacts.
func TestRedact(t *testing.T) {
	const key = "sk-live-0123456789abcdefXYZ"
	path := filepath.Join(t.TempDir(), "hive.db")
	s := open(t, path)
	s.Redact(secret.New(map[string]string{"OPENAI_API_KEY": key}))
	ctx := context.Background()
	leak := "the key is " + key
	if err := s.CreateRun(ctx, Run{ID: "r1", Task: leak, Status: "running", Spec: []byte(`{"task":"` + leak + `"}`)}); err != nil {
		t.Fatal(err)
	}
	s.PutNode("r1", "lead", []byte(`{"report":"`+leak+`"}`))
	s.AppendEvent("r1", 1, []byte(`{"text":"`+leak+`"}`))
	s.PutStepAsync("r1", "a", []byte(`{"output":"`+leak+`"}`))
	if err := s.PutStep(ctx, "r1", "b", []byte(`{"evidence":"`+leak+`"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutArtifact(ctx, "r1", "1/code", "1", "code", []byte(leak)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRun(ctx, Run{ID: "r1", Status: "done", Answer: leak, Error: leak}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	steps, err := s.Steps(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(steps["b"]); !strings.Contains(got, "[redacted OPENAI_API_KEY]") {
		t.Errorf("step b = %s, want the placeholder", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Every file of the database: the main file and the write-ahead log.
	files, _ := filepath.Glob(path + "*")
	if len(files) == 0 {
		t.Fatal("no journal files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), key) {
			t.Errorf("%s holds the key", filepath.Base(f))
		}
	}
}
