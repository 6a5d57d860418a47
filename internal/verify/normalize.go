package verify

import (
	"strings"
	"unicode"
)

// FinalNumber returns the final numeric answer of a free-text answer in a
// canonical form, so that "$1,200.00" and "1200" compare equal: the first
// number after the last "####", else after the last "the answer is" or
// "answer:" (any case), else the last number of the text. "$", "%", "+"
// and thousands separators are dropped, and trailing zeros after the
// decimal point. ok is false when the text holds no number.
func FinalNumber(text string) (num string, ok bool) {
	if i := strings.LastIndex(text, "####"); i >= 0 {
		if n, ok := firstNumber(text[i+4:]); ok {
			return n, true
		}
	}
	lower := strings.ToLower(text)
	at, marker := -1, ""
	for _, m := range []string{"the final answer is", "the answer is", "final answer:", "answer:"} {
		if i := strings.LastIndex(lower, m); i > at {
			at, marker = i, m
		}
	}
	// lower and text agree on byte offsets unless case mapping changed a
	// rune's length; then fall back to the last number.
	if at >= 0 && len(lower) == len(text) {
		if n, ok := firstNumber(text[at+len(marker):]); ok {
			return n, true
		}
	}
	var last string
	scanNumbers(text, func(n string) bool { last = n; return true })
	return last, last != ""
}

func firstNumber(s string) (string, bool) {
	var first string
	scanNumbers(s, func(n string) bool { first = n; return false })
	return first, first != ""
}

// scanNumbers calls fn with each number of s, normalised, until fn
// returns false. A number is an optional sign, digits with optional
// comma thousands separators, and an optional decimal part.
func scanNumbers(s string, fn func(string) bool) {
	isDigit := func(i int) bool { return i < len(s) && s[i] >= '0' && s[i] <= '9' }
	for i := 0; i < len(s); i++ {
		start := i
		neg := false
		if (s[i] == '-' || s[i] == '+') && (isDigit(i+1) || (i+2 < len(s) && s[i+1] == '.' && isDigit(i+2))) {
			// A sign only when it does not follow a word or a digit
			// ("3-4" is a range, "x-1" an expression).
			if i == 0 || !(unicode.IsLetter(rune(s[i-1])) || unicode.IsDigit(rune(s[i-1]))) {
				neg = s[i] == '-'
				i++
			} else {
				continue
			}
		}
		if !isDigit(i) && !(s[i] == '.' && isDigit(i+1)) {
			continue
		}
		if start == i && i > 0 && (unicode.IsLetter(rune(s[i-1])) || s[i-1] == '_') {
			// Part of a word ("x2", "var_1"): skip the word's digits.
			for isDigit(i + 1) {
				i++
			}
			continue
		}
		var intPart, frac strings.Builder
		for i < len(s) {
			switch {
			case isDigit(i):
				intPart.WriteByte(s[i])
				i++
				continue
			case s[i] == ',' && isDigit(i+1) && isDigit(i+2) && isDigit(i+3) && !isDigit(i+4):
				i++ // a thousands separator
				continue
			}
			break
		}
		if i+1 < len(s) && s[i] == '.' && isDigit(i+1) {
			i++
			for isDigit(i) {
				frac.WriteByte(s[i])
				i++
			}
		}
		if !fn(canonNumber(neg, intPart.String(), frac.String())) {
			return
		}
		i-- // the loop's i++ moves past the number
	}
}

func canonNumber(neg bool, intPart, frac string) string {
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	frac = strings.TrimRight(frac, "0")
	n := intPart
	if frac != "" {
		n += "." + frac
	}
	if neg && n != "0" {
		n = "-" + n
	}
	return n
}

// normText is text compared without case or differences of whitespace,
// and without a final period.
func normText(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	return strings.TrimRight(s, ".")
}
