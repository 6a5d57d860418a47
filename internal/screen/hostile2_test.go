package screen

import (
	"encoding/base64"
	"strings"
	"testing"
)

// key is a GitHub token of the shape the built-in detector knows.
var hostileKey = "gh" + "p_" + strings.Repeat("Z9y8X7w6V5", 4)

func mustScreen(t *testing.T) *Screen {
	t.Helper()
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHostileBase64Evasions: the screen decodes "long base64 runs" so
// that a key sent base64-encoded is found. Each of these is the key in
// ordinary base64 that a recipient decodes at once, and none is found:
// after 64 decoy runs (only the first 64 are decoded), wrapped at 76
// columns as base64(1) and MIME write it, one stray character glued in
// front (the run's length is then not one base64 decodes), and behind
// 64 KiB of padding in the same run (only its first 64 KiB are decoded).
func TestHostileBase64Evasions(t *testing.T) {
	s := mustScreen(t)
	enc := base64.StdEncoding.EncodeToString([]byte("token=" + hostileKey))
	long := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 40) + " token=" + hostileKey))
	var wrapped strings.Builder
	for i := 0; i < len(long); i += 76 {
		wrapped.WriteString(long[i:min(i+76, len(long))] + "\n")
	}
	cases := map[string]string{
		"65th run": strings.Repeat(strings.Repeat("A", 28)+" ", 64) + enc,
		"wrapped":  wrapped.String(),
		"stray":    "Q" + enc,
		"padded":   strings.Repeat("AAAA", 16<<10) + enc,
	}
	for name, text := range cases {
		if fs := s.Check(Report, text); len(fs) == 0 {
			t.Errorf("%s: the base64 of a key is not found", name)
		}
	}
}

// TestHostileInvisibleNotCf: the screen strips format characters (Cf)
// before matching, but other characters that do not show are not Cf:
// variation selectors (U+FE00..FE0F, Mn), the combining grapheme joiner
// (U+034F, Mn) and the Hangul fillers (U+115F, U+3164, Lo). A key split
// by one reads and copies as the key.
func TestHostileInvisibleNotCf(t *testing.T) {
	s := mustScreen(t)
	for _, r := range []rune{'\uFE0F', '\u034F', '\U000E0100'} {
		text := "use " + hostileKey[:10] + string(r) + hostileKey[10:]
		if fs := s.Check(Report, text); len(fs) == 0 {
			t.Errorf("a key split by U+%04X is not found", r)
		}
	}
}

// TestHostileClassifierNullFlag: a verdict whose "flagged" is null is read
// as not flagged (json.Unmarshal of null into a bool leaves it false, with
// no error), though the answer names a category and a reason: a task that
// talks the classifier into "null when unsure" gets through, where a
// classifier that failed would have held it.
func TestHostileClassifierNullFlag(t *testing.T) {
	v, err := ParseVerdict(`{"flagged": null, "category": "cyber", "reason": "asks for ransomware"}`)
	if err == nil && !v.Flagged {
		t.Fatalf("flagged: null read as a verdict of not flagged: %+v", v)
	}
}
