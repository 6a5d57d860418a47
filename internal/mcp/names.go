package mcp

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Tool names. Model APIs accept fewer names than MCP does: Anthropic
// ^[a-zA-Z0-9_-]{1,128}$, OpenAI ^[a-zA-Z0-9_-]{1,64}$, Gemini the same
// with a letter or '_' first, while an MCP tool may be called
// "admin.tools.list" or "repo/read". A Hive name is SERVER__tool (the
// server's NAME, two underscores, the tool's name), which every one
// of them accepts:
//
//   - a server's name starts with a letter and holds no "__" (Validate), so
//     the first "__" of a name ends the server's part;
//   - a tool's name whose characters are all [a-zA-Z0-9_-], and that fits
//     in 64 characters with its prefix, is kept as it is;
//   - any other is rewritten: each other character becomes '_', the whole
//     is cut to 55 characters and given '_' and 8 hex digits of the SHA-256
//     of the tool's own name, so that "a.b" and "a/b" stay apart and the
//     name is the same at every run (prompt caches key on it);
//   - names that still collide within a server are all left out, with a
//     warning, rather than one chosen by the order the server listed them.
const (
	maxToolName = 64
	separator   = "__"
	hashLen     = 8
)

// toolName returns the Hive name of tool on server.
func toolName(server, tool string) string {
	name := server + separator + tool
	if len(name) <= maxToolName && !strings.ContainsFunc(tool, badNameRune) {
		return name
	}
	var b strings.Builder
	b.WriteString(server + separator)
	for _, r := range tool {
		if badNameRune(r) {
			r = '_'
		}
		b.WriteRune(r)
	}
	name = b.String()
	name = name[:min(len(name), maxToolName-1-hashLen)]
	sum := sha256.Sum256([]byte(tool))
	return name + "_" + hex.EncodeToString(sum[:])[:hashLen]
}

func badNameRune(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
}

// splitName returns the server part of a Hive tool name.
func splitName(name string) (server string, ok bool) {
	server, _, ok = strings.Cut(name, separator)
	return server, ok
}
