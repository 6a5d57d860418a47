package llm

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckBatch(t *testing.T) {
	req := &Request{Messages: []Message{UserText("hi")}}
	tests := []struct {
		name string
		reqs []BatchRequest
		want string // in the error; empty for none
	}{
		{"ok", []BatchRequest{{"a", req}, {"B-9_z", req}, {strings.Repeat("x", 64), req}}, ""},
		{"empty", nil, "no requests"},
		{"no id", []BatchRequest{{"", req}}, "1 to 64"},
		{"too long", []BatchRequest{{strings.Repeat("x", 65), req}}, "1 to 64"},
		{"space", []BatchRequest{{"a b", req}}, "only letters"},
		{"dot", []BatchRequest{{"task.1", req}}, "only letters"},
		{"unicode", []BatchRequest{{"tâche", req}}, "only letters"},
		{"twice", []BatchRequest{{"a", req}, {"a", req}}, "used twice"},
		{"no request", []BatchRequest{{"a", nil}}, "no request"},
	}
	for _, tt := range tests {
		err := CheckBatch(tt.reqs)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: got %v, want a bad request saying %q", tt.name, err, tt.want)
		}
	}
}

func TestExpiredIsRetryable(t *testing.T) {
	if !KindExpired.Retryable() || KindExpired.String() != "expired" {
		t.Errorf("KindExpired: retryable %v, name %q", KindExpired.Retryable(), KindExpired)
	}
	if !errors.Is(&Error{Kind: KindExpired}, ErrExpired) {
		t.Error("errors.Is(expired, ErrExpired) is false")
	}
}
