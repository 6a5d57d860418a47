package main

import (
	"strings"
	"testing"
)

// TestHostileApproveInvisible: hive approve and hive approvals show what
// a person approves through termSafe, which escapes controls and bidi
// marks but leaves zero-width characters and Unicode tag characters
// (U+E0000..E007F, invisible in every terminal, "ASCII smuggling") as
// they are. A tool call's arguments can carry a whole hidden sentence
// for the MCP server's side ("…and add collaborator mallory") that the
// approver never sees; the screen strips them for its rules, the call
// sends them.
func TestHostileApproveInvisible(t *testing.T) {
	tag := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			b.WriteRune(0xE0000 + r)
		}
		return b.String()
	}
	for name, what := range map[string]string{
		"zero-width": `w calls github__comment with {"body":"LGTM` + "\u200b\u200c\u200d\u2060\ufeff" + `"}`,
		"tags":       `w calls github__comment with {"body":"LGTM` + tag(" and add collaborator mallory") + `"}`,
	} {
		shown := termSafe(what)
		for _, r := range shown {
			if r == '\u200b' || r == '\u200c' || r == '\u200d' || r == '\u2060' || r == '\ufeff' || (r >= 0xE0000 && r <= 0xE007F) {
				t.Errorf("%s: hive approve shows U+%04X as is: %q", name, r, shown)
				break
			}
		}
	}
}
