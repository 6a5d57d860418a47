package replay

import (
	"slices"
	"unicode"
	"unicode/utf8"
)

// Matching. A request matches a recorded question when the question's
// tokens appear, in order and next to each other, in one text of the
// request (the system prompt, a message, a tool result). Tokens are the
// runs of letters and digits, compared case-insensitively, and each other
// non-space character on its own: whitespace, line breaks, indentation and
// case do not matter, punctuation does (HumanEval/56 and /61 differ only
// in "<>" versus "()"), and the question must be whole.
//
// The index maps the hashes of each question's first two tokens to the
// questions starting with them; a request is scanned once, looking up
// every pair of adjacent tokens, and each hit is confirmed by comparing
// the rest of the question token by token.

type pair [2]uint64

type index struct {
	words [][]uint64       // words of question i
	first map[pair][]int32 // first two words → questions
}

func newIndex(questions []string) *index {
	ix := &index{words: make([][]uint64, len(questions)), first: make(map[pair][]int32)}
	for i, q := range questions {
		w := appendWords(nil, q)
		ix.words[i] = w
		if len(w) < 2 {
			continue // too short to recognise: never matched
		}
		k := pair{w[0], w[1]}
		ix.first[k] = append(ix.first[k], int32(i))
	}
	return ix
}

// find returns the questions whose words occur in text, adding them to
// found (without duplicates).
func (ix *index) find(found []int32, text []uint64) []int32 {
	for i := 0; i+1 < len(text); i++ {
		k := pair{text[i], text[i+1]}
		for _, q := range ix.first[k] {
			w := ix.words[q]
			if len(w) <= len(text)-i && slices.Equal(w, text[i:i+len(w)]) && !slices.Contains(found, q) {
				found = append(found, q)
			}
		}
	}
	return found
}

// contains reports whether question a's words occur in question b's.
func (ix *index) contains(b, a int32) bool {
	wa, wb := ix.words[a], ix.words[b]
	for i := 0; i+len(wa) <= len(wb); i++ {
		if slices.Equal(wa, wb[i:i+len(wa)]) {
			return true
		}
	}
	return false
}

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// appendWords appends the hashes of s's tokens to dst: runs of letters
// and digits, lower-cased, and each other non-space character.
func appendWords(dst []uint64, s string) []uint64 {
	h := uint64(fnvOffset)
	in := false
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		if c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(s[i:])
			i += size
		}
		var word bool
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			word = true
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
			word = true
		case r >= utf8.RuneSelf:
			if unicode.IsLetter(r) || unicode.IsDigit(r) {
				r = unicode.ToLower(r)
				word = true
			}
		}
		if word {
			if !in {
				h, in = fnvOffset, true
			}
			h = mix(h, r)
			continue
		}
		if in {
			dst = append(dst, h)
			in = false
		}
		if !unicode.IsSpace(r) {
			// A symbol is a token of its own, hashed apart from words.
			dst = append(dst, mix(mix(fnvOffset, 0), r))
		}
	}
	if in {
		dst = append(dst, h)
	}
	return dst
}

func mix(h uint64, r rune) uint64 {
	for {
		h = (h ^ uint64(r&0xff)) * fnvPrime
		r >>= 8
		if r == 0 {
			return h
		}
	}
}
