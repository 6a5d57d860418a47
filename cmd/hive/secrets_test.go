package main

import (
	"bytes"
	"encoding/json"
	"github.com/hive-swarm/hive/internal/swarm"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsNeverJournaled runs a swarm whose models read their key from
// a variable, then reads every file the run left (the journal and its
// side files, as raw bytes) and the output: the key is in none of them.
func TestSecretsNeverJournaled(t *testing.T) {
	w := newWorld(t)
	cfg, err := os.ReadFile(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyed := strings.ReplaceAll(string(cfg), "base_url = ", "api_key_env = \"HIVE_TEST_KEY\"\nbase_url = ")
	if strings.Count(keyed, "HIVE_TEST_KEY") != 3 {
		t.Fatalf("the config did not get its keys:\n%s", keyed)
	}
	if err := os.WriteFile(w.cfg, []byte(keyed), 0o600); err != nil {
		t.Fatal(err)
	}
	w.srv.APIKey = secretKey // a call without the key fails, so the run proves it was sent
	vars := map[string]string{"HIVE_CONFIG": w.cfg, "HOME": w.dir, "HIVE_TEST_KEY": secretKey}

	code, out, errOut := hiveIn(t, vars, "run", "count to three")
	if code != 0 || out != "three reports\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	assertNoSecret(t, "hive run", out, errOut)
	_, o, e := hiveIn(t, vars, "runs", "--json")
	assertNoSecret(t, "hive runs", o, e)
	var runs []swarm.RunView
	if err := json.Unmarshal([]byte(o), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs --json: %v\n%s", err, o)
	}
	_, o, e = hiveIn(t, vars, "show", "--json", runs[0].ID)
	assertNoSecret(t, "hive show", o, e)

	var files []string
	err = filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secretKey)) {
			t.Errorf("%s holds the API key", filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var journal bool
	for _, f := range files {
		journal = journal || filepath.Base(f) == "hive.db"
	}
	if !journal {
		t.Fatalf("no journal among the files read: %v", files)
	}
	t.Logf("%d files read, none holds the key: %v", len(files), files)
}
