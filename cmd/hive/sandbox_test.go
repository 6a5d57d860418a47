package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These tests run JavaScript with --sandbox=none: in a child process (the
// test binary re-executed, see TestMain) but without namespaces; the
// isolated paths are tested in internal/sandbox.
func TestSandboxCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.js", "console.log('hi ' + stdin)")
	bad := write("bad.js", "throw new Error('no')")
	in := write("in.txt", "there")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"run js", []string{"sandbox", "run", "--sandbox=none", "--stdin", in, ok}, 0, "hi there", ""},
		{"run js json", []string{"sandbox", "run", "--sandbox", "none", "--json", ok}, 0, `"stdout":"hi \n"`, ""},
		{"failing program", []string{"sandbox", "run", "--sandbox=none", bad}, 1, "Uncaught Error: no", ""},
		{"no file", []string{"sandbox", "run"}, 2, "", "want one FILE"},
		{"missing file", []string{"sandbox", "run", filepath.Join(dir, "nope.py")}, 1, "", "give the path of a program"},
		{"unknown lang", []string{"sandbox", "run", "--lang", "cobol", ok}, 2, "", "unknown language"},
		{"unknown ext", []string{"sandbox", "run", in}, 2, "", "pass --lang"},
		{"bad memory", []string{"sandbox", "run", "--memory", "lots", ok}, 2, "", "want e.g. 512M"},
		{"bad mode", []string{"sandbox", "run", "--sandbox", "maybe", ok}, 2, "", "unknown sandbox mode"},
		{"no subcommand", []string{"sandbox"}, 2, "", "missing subcommand"},
		{"unknown subcommand", []string{"sandbox", "jail"}, 2, "", "unknown subcommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
			code := Main(context.Background(), env, tt.args)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tt.wantOut)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
			if tt.wantErr != "" && strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 && !strings.Contains(stderr.String(), "Usage") {
				t.Errorf("error is not one line: %q", stderr.String())
			}
		})
	}
}

func TestSandboxJSONShape(t *testing.T) {
	var stdout, stderr bytes.Buffer
	p := filepath.Join(t.TempDir(), "a.js")
	os.WriteFile(p, []byte("console.log(1)"), 0o644)
	env := &Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	if code := Main(context.Background(), env, []string{"sandbox", "run", "--sandbox=none", "--json", p}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var m map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"reason", "exit_code", "stdout", "stderr", "wall_ns", "cpu_ns", "peak_bytes", "isolated"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, stdout.String())
		}
	}
}
