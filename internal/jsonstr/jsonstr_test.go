package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// want is what encoding/json writes for s, with or without HTML escaping.
func want(s string, html bool) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(html)
	enc.Encode(s)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func check(t *testing.T, s string) {
	t.Helper()
	for _, html := range []bool{true, false} {
		if got, w := Append([]byte("x"), s, html), append([]byte("x"), want(s, html)...); !bytes.Equal(got, w) {
			t.Errorf("Append(%q, html %v) = %s, want %s", s, html, got, w)
		}
	}
}

func TestAppend(t *testing.T) {
	strs := []string{"", "plain", "Task \"b-1\":\nSay <it> & go\\ \t\r\b\f\x00\x1f\x7f",
		"é 世 😀 \u2028\u2029 bad\xff\xfe", "\xe2\x80", "\xed\xa0\x80 surrogate", "end\xc3"}
	for c := range 256 {
		strs = append(strs, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b", string(rune(c)))
	}
	for _, s := range strs {
		check(t, s)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<x>&\u2028", "bad\xff", "\x00\n"} {
		f.Add(s)
	}
	f.Fuzz(check)
}

func BenchmarkAppend(b *testing.B) {
	s := "Task \"b-1\":\nSay the number b-1, and show <your> work & nothing else."
	buf := make([]byte, 0, 256)
	b.Run("jsonstr", func(b *testing.B) {
		for b.Loop() {
			buf = Append(buf[:0], s, true)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			q, _ := json.Marshal(s)
			buf = append(buf[:0], q...)
		}
	})
}
