package secret

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	r := New(map[string]string{
		"OPENAI_API_KEY": "sk-test-0123456789abcdef",
		"HIVE_TOKEN":     `tok"en<&>\value42`,
		"SHORT":          "1234567", // under MinLen: ordinary text
	})
	tests := []struct{ in, want string }{
		{"key=sk-test-0123456789abcdef end", "key=[redacted OPENAI_API_KEY] end"},
		{"twice sk-test-0123456789abcdefsk-test-0123456789abcdef", "twice [redacted OPENAI_API_KEY][redacted OPENAI_API_KEY]"},
		{"nothing here 1234567", "nothing here 1234567"},
		{`raw tok"en<&>\value42`, "raw [redacted HIVE_TOKEN]"},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := string(r.Bytes([]byte(tt.in))); got != tt.want {
			t.Errorf("Bytes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Inside JSON, in both of encoding/json's escapings.
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		enc.Encode(map[string]string{"evidence": "env: HIVE_TOKEN=" + `tok"en<&>\value42`})
		out := r.Bytes(b.Bytes())
		if strings.Contains(string(out), "value42") {
			t.Errorf("escapeHTML=%v: the token survived in JSON: %s", html, out)
		}
		var back map[string]string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Errorf("escapeHTML=%v: redacted JSON no longer parses: %v", html, err)
		}
	}
}

func TestBytesKeepsCleanSlice(t *testing.T) {
	r := New(map[string]string{"K_KEY": "abcdefghijkl"})
	in := []byte("clean text")
	if out := r.Bytes(in); &out[0] != &in[0] {
		t.Error("Bytes copied a slice that holds no secret")
	}
	var nilR *Redactor
	if nilR.String("abcdefghijkl") != "abcdefghijkl" || !nilR.Empty() {
		t.Error("a nil redactor changed text")
	}
}

func TestEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin:/bin",
		"ANTHROPIC_API_KEY=sk-ant-xxxxxxxxxxxx",
		"MY_SERVICE_TOKEN=tok-abcdefgh",
		"DB_PASSWORD=hunter2hunter2",
		"CUSTOM=plainbutsecret",
		"HOME=/home/someone",
		"EMPTY_KEY=",
	}
	got := Env(env, "CUSTOM")
	for _, k := range []string{"ANTHROPIC_API_KEY", "MY_SERVICE_TOKEN", "DB_PASSWORD", "CUSTOM"} {
		if _, ok := got[k]; !ok {
			t.Errorf("Env lacks %s", k)
		}
	}
	for _, k := range []string{"PATH", "HOME", "EMPTY_KEY"} {
		if _, ok := got[k]; ok {
			t.Errorf("Env took %s, which is no secret", k)
		}
	}
}

func TestWriterRedactsLogs(t *testing.T) {
	r := New(map[string]string{"ANTHROPIC_API_KEY": "sk-ant-secretvalue"})
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(r.Writer(&b), nil))
	log.Warn("call failed", "header", "x-api-key: sk-ant-secretvalue")
	if strings.Contains(b.String(), "secretvalue") || !strings.Contains(b.String(), "[redacted ANTHROPIC_API_KEY]") {
		t.Errorf("log line = %q", b.String())
	}
}
