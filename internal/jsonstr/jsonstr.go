// Package jsonstr appends Go strings to byte slices as JSON strings, byte
// for byte as encoding/json writes them, without reflection or an
// allocation per string.
//
// Hive writes the JSON of its hottest paths by hand (a swarm journals
// every node change and sends a request per worker turn), and every such
// writer needs strings escaped exactly as encoding/json escapes them, so
// that what it writes equals what json.Marshal would.
package jsonstr

import "unicode/utf8"

const hex = "0123456789abcdef"

// Append appends s to b as a JSON string. Like encoding/json, it writes
// invalid UTF-8 as U+FFFD and escapes U+2028 and U+2029 (for JavaScript);
// with html set it also escapes <, > and &, as json.Marshal does, and
// without it leaves them as they are, as an Encoder with SetEscapeHTML(false)
// does.
func Append(b []byte, s string, html bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default: // other control characters; <, >, & with html
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
