package verify

import (
	"strings"
	"unicode/utf8"
)

// answerMarkers introduce a final answer in free text, strongest first
// after "####" (GSM8K's own marker, handled apart).
var answerMarkers = []string{"\\boxed{", "the final answer is", "the answer is", "final answer:", "answer:"}

// FinalNumber returns the final numeric answer of a free-text answer in a
// canonical form, so that "$1,200.00" and "1200" compare equal (no "$",
// "%", "+" or thousands separators, no trailing zeros after the decimal
// point, "-" only when non-zero): the first number after the
// last "####" marker; else the first number after the last of
// "\boxed{", "the final answer is", "the answer is", "final answer:",
// "answer:" (any case); else the last number in the text. Numbers may
// carry a sign, thousands separators and decimals; "$" and "%" around
// them are ignored. ok is false when the text holds no number (an answer
// cut off before any, or an empty one).
func FinalNumber(answer string) (num string, ok bool) {
	if i := strings.LastIndex(answer, "####"); i >= 0 {
		if n, ok := firstNumber(answer[i+len("####"):]); ok {
			return n, true
		}
	}
	lower := strings.ToLower(answer)
	best, bestAt := "", -1
	for _, m := range answerMarkers {
		if i := strings.LastIndex(lower, m); i > bestAt {
			best, bestAt = m, i
		}
	}
	if bestAt >= 0 {
		// lower and answer may differ in length for a few runes; use the
		// byte offset only when both agree on the marker.
		if strings.EqualFold(answer[bestAt:min(len(answer), bestAt+len(best))], best) {
			if n, ok := firstNumber(answer[bestAt+len(best):]); ok {
				return n, true
			}
		}
	}
	return lastNumber(answer)
}

func firstNumber(s string) (string, bool) {
	var first string
	found := false
	scanNumbers(s, func(n string) bool {
		first, found = n, true
		return false
	})
	return first, found
}

func lastNumber(s string) (string, bool) {
	var last string
	found := false
	scanNumbers(s, func(n string) bool {
		last, found = n, true
		return true
	})
	return last, found
}

// scanNumbers calls fn with each number in s, normalised, until fn returns
// false. A "-" (or U+2212) right before a digit is a sign unless it
// follows a letter, digit or ")" (then it is a minus: "16-3"). A comma
// joins digit groups only when exactly three digits follow it.
func scanNumbers(s string, fn func(string) bool) {
	var buf [64]byte
	for i := 0; i < len(s); {
		c := s[i]
		neg := false
		switch {
		case c == '-' && i+1 < len(s) && isDigit(s[i+1]) && signAllowed(s, i):
			neg, i = true, i+1
		case strings.HasPrefix(s[i:], "\u2212") && i+3 < len(s) && isDigit(s[i+3]) && signAllowed(s, i):
			neg, i = true, i+3
		case c == '.' && i+1 < len(s) && isDigit(s[i+1]) && (i == 0 || !isDigit(s[i-1])):
			// ".5"
		case isDigit(c):
		default:
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		b := buf[:0]
		// integer part with optional 3-digit groups
		for i < len(s) {
			if isDigit(s[i]) {
				b = append(b, s[i])
				i++
				continue
			}
			if s[i] == ',' && threeDigits(s, i+1) {
				i++
				continue
			}
			break
		}
		var frac []byte
		if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			i++
			fs := i
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			frac = []byte(s[fs:i])
		}
		if !fn(normalize(neg, b, frac)) {
			return
		}
	}
}

// threeDigits reports whether s[i:] starts with exactly three digits.
func threeDigits(s string, i int) bool {
	if i+3 > len(s) {
		return false
	}
	for j := i; j < i+3; j++ {
		if !isDigit(s[j]) {
			return false
		}
	}
	return i+3 == len(s) || !isDigit(s[i+3])
}

func signAllowed(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !(r == ')' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func normalize(neg bool, intPart, frac []byte) string {
	for len(intPart) > 1 && intPart[0] == '0' {
		intPart = intPart[1:]
	}
	if len(intPart) == 0 {
		intPart = []byte{'0'}
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	zero := len(frac) == 0 && string(intPart) == "0"
	var b strings.Builder
	if neg && !zero {
		b.WriteByte('-')
	}
	b.Write(intPart)
	if len(frac) > 0 {
		b.WriteByte('.')
		b.Write(frac)
	}
	return b.String()
}

// normText is text compared without case or differences of whitespace,
// and without a final period.
func normText(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.TrimRight(s, ".")
}
