package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hive-swarm/hive/internal/suite"
)

// dataTestDir returns the recorded data to serve, skipping when absent.
func dataTestDir(t *testing.T) string {
	t.Helper()
	loc, err := suite.Locate("", os.Getenv)
	if err != nil || loc.Source == suite.SourceCache {
		t.Skipf("benchmark data not found (set HIVE_DATA or provide ../shared/data next to the repository): %v", err)
	}
	return loc.Dir
}

// dataServer serves the files of src at their upstream URLs, the way
// raw.githubusercontent.com does, with corrupt's bytes altered.
func dataServer(t *testing.T, src, corrupt string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	byURL := map[string]suite.DataFile{}
	for _, f := range suite.DataFiles() {
		byURL[f.URL("")] = f
	}
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		f, ok := byURL[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f.Path)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if f.Path == corrupt {
			data = append(bytes.Clone(data[:len(data)/2]), "tampered"...)
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func runHive(t *testing.T, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return getenv[k] }}
	code = Main(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func setDataBaseURL(t *testing.T, url string) {
	old := dataBaseURL
	dataBaseURL = url
	t.Cleanup(func() { dataBaseURL = old })
}

func TestDataFetch(t *testing.T) {
	src := dataTestDir(t)
	srv, hits := dataServer(t, src, "")
	setDataBaseURL(t, srv.URL)
	dir := filepath.Join(t.TempDir(), "data")

	code, out, errs := runHive(t, nil, "data", "fetch", "--dir", dir)
	if code != 0 {
		t.Fatalf("fetch: exit %d\n%s%s", code, out, errs)
	}
	if problems := suite.VerifyData(dir); problems != nil {
		t.Fatalf("fetched data does not verify: %v", problems)
	}
	if n := hits.Load(); n != int64(len(suite.DataFiles())) {
		t.Fatalf("%d requests for %d files", n, len(suite.DataFiles()))
	}
	if strings.Count(out, "fetched ") != len(suite.DataFiles()) || !strings.Contains(out, "complete in "+dir) {
		t.Fatalf("fetch output:\n%s", out)
	}

	// Again: nothing to download.
	hits.Store(0)
	if code, out, _ := runHive(t, nil, "data", "fetch", "--dir", dir); code != 0 || hits.Load() != 0 || strings.Count(out, "ok ") != len(suite.DataFiles()) {
		t.Fatalf("second fetch: exit %d, %d requests\n%s", code, hits.Load(), out)
	}

	// A local file that was changed is downloaded again.
	f := suite.DataFiles()[3]
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(f.Path)), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	hits.Store(0)
	if code, _, errs := runHive(t, nil, "data", "fetch", "--dir", dir); code != 0 || hits.Load() != 1 {
		t.Fatalf("repair fetch: exit %d, %d requests: %s", code, hits.Load(), errs)
	}
	if err := suite.VerifyFile(dir, f); err != nil {
		t.Fatal(err)
	}

	// path reports the directory and that it is complete.
	code, out, _ = runHive(t, nil, "data", "path", "--data", dir)
	if code != 0 || !strings.Contains(out, dir+"\t(from --data)") || !strings.Contains(out, "complete: 10 files") {
		t.Fatalf("data path: exit %d\n%s", code, out)
	}
	code, out, _ = runHive(t, map[string]string{"HIVE_DATA": dir}, "data", "path")
	if code != 0 || !strings.Contains(out, "(from HIVE_DATA)") {
		t.Fatalf("data path with HIVE_DATA: exit %d\n%s", code, out)
	}
}

func TestDataFetchRejectsCorruptFile(t *testing.T) {
	src := dataTestDir(t)
	bad := "gsm8k/test.jsonl"
	srv, _ := dataServer(t, src, bad)
	setDataBaseURL(t, srv.URL)
	dir := t.TempDir()
	// A stale copy with the wrong bytes must not survive either.
	if err := os.MkdirAll(filepath.Join(dir, "gsm8k"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(bad)), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runHive(t, nil, "data", "fetch", "--dir", dir)
	if code != 1 || !strings.Contains(errs, "checksum mismatch") || !strings.Contains(errs, bad) || !strings.Contains(out, "FAILED   "+bad) {
		t.Fatalf("corrupt download: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(bad))); !os.IsNotExist(err) {
		t.Fatalf("corrupt file kept: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "gsm8k"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".fetch-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
	if problems := suite.VerifyData(dir); len(problems) != 1 {
		t.Fatalf("want only %s missing, got %v", bad, problems)
	}
	code, out, _ = runHive(t, nil, "data", "path", "--data", dir)
	if code != 1 || !strings.Contains(out, "incomplete: 1 of 10") || !strings.Contains(out, "hive data fetch") {
		t.Fatalf("data path on incomplete data: exit %d\n%s", code, out)
	}
}

func TestDataUsage(t *testing.T) {
	for _, args := range [][]string{{"data"}, {"data", "bogus"}, {"data", "fetch", "extra"}, {"data", "path", "--nope"}} {
		if code, _, _ := runHive(t, nil, args...); code != 2 {
			t.Errorf("hive %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	code, _, errs := runHive(t, nil, "data", "path", "--data", filepath.Join(t.TempDir(), "nope"))
	if code != 1 || !strings.Contains(errs, "does not exist") {
		t.Fatalf("missing --data dir: exit %d: %s", code, errs)
	}
}
