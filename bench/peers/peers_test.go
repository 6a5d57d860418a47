package main

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The benchmark re-executes its own binary as the model server and
	// as each Go implementation: under go test, that is this binary.
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(childMain(raw))
	}
	os.Exit(m.Run())
}

// TestPeers runs every implementation once on a small job and checks
// each answer at the server: 2n+2 calls, all placed, every report right.
func TestPeers(t *testing.T) {
	o := options{
		Impls:        allImpls,
		Ns:           []int{5},
		Latencies:    []time.Duration{10 * time.Millisecond},
		Reps:         1,
		Cap:          3,
		ModuleDir:    ".",
		LangGraphDir: "langgraph",
		Log:          tWriter{t},
	}
	samples, err := bench(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != len(allImpls) {
		t.Fatalf("%d samples, want %d", len(samples), len(allImpls))
	}
	for _, s := range samples {
		if s.Server.MaxInFlight > int64(o.Cap) {
			t.Errorf("%s: %d calls in flight at once, above the cap of %d", s.Impl, s.Server.MaxInFlight, o.Cap)
		}
		if s.PeakRSSKB <= 0 || s.Wall <= 0 {
			t.Errorf("%s: nothing measured: %+v", s.Impl, s)
		}
	}
}

// TestCountReports: the lead's count takes each task once, and only with
// its right value.
func TestCountReports(t *testing.T) {
	s := taskReport("t-0") + "\n" + taskReport("t-0") + "\nt-1=00000000\n" + taskReport("t-2")
	if got := countReports(s); got != 2 {
		t.Errorf("countReports = %d, want 2", got)
	}
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// The toolchains keep what they need and lose every secret.
func TestToolEnviron(t *testing.T) {
	got := toolEnviron([]string{"PATH=/bin", "GOPROXY=off", "npm_config_cache=/c", "OPENAI_API_KEY=sk-1", "GITHUB_TOKEN=g", "DB_PASSWORD=p", "HIVE_TOKEN=h"})
	want := []string{"PATH=/bin", "GOPROXY=off", "npm_config_cache=/c"}
	if !slices.Equal(got, want) {
		t.Errorf("toolEnviron = %q, want %q", got, want)
	}
}
