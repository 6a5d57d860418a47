package verify

import (
	"slices"
	"testing"
)

func TestDroppedDefs(t *testing.T) {
	const task = "# HumanEval/50\ndef encode_shift(s: str):\n    return s\n\n\ndef decode_shift(s: str):\n    \"\"\"Inverse of encode_shift.\n    def not_a_def(x):\n    \"\"\"\n"
	for _, tt := range []struct {
		code string
		want []string
	}{
		{"def decode_shift(s):\n    return s\n", []string{"encode_shift"}},
		{"def encode_shift(s):\n    return s\n\ndef decode_shift(s):\n    return s\n", nil},
		{"encode_shift = lambda s: s\nasync def decode_shift(s):\n    return s\n", nil},
		{"from codec import encode_shift\ndef decode_shift(s: str) -> str:\n    return s\n", nil},
		{"class X:\n    def encode_shift(self): pass\n    def decode_shift(self): pass\n", []string{"encode_shift", "decode_shift"}}, // methods are not top level
		{"if encode_shift == 1: pass\ndef decode_shift(s): pass\n", []string{"encode_shift"}},                                        // a comparison binds nothing
	} {
		if got := DroppedDefs(task, tt.code); !slices.Equal(got, tt.want) {
			t.Errorf("DroppedDefs(%q) = %q, want %q", tt.code, got, tt.want)
		}
	}
	if got := DroppedDefs("class Solution:\n    def f(self): ...\n", "class Solution(object):\n    pass\n"); len(got) != 0 {
		t.Errorf("a class with bases: %q", got)
	}
	if got := DroppedDefs("Write a function that adds two numbers.", "def add(a, b): return a + b\n"); len(got) != 0 {
		t.Errorf("a task without code: %q", got)
	}
}
