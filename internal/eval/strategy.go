package eval

import (
	"fmt"
	"strconv"
	"strings"
)

// A Strategy is a swarm configuration to evaluate:
//
//	single:M              one model answers
//	cascade:M1>M2>…       M1 answers; a verifier gates it (visible tests for
//	                      code; for math, agreement with the middle models,
//	                      or with two models M1's own arithmetic, recomputed);
//	                      what fails moves up to the next tier
//	cross:M1>M2>…         a cascade for code whose gate is a cross-check: the
//	                      visible tests, then agreement in behaviour with an
//	                      earlier tier's answer on inputs derived from them;
//	                      when no tier is confirmed, the latest answer that
//	                      passed the tests stands. With +P*n, each check
//	                      also asks model P for n more answers to compare
//	                      with (cheap confirmations: cross:A>B+P*3)
//	score:M1>M2>…+P*n     a cross-checked cascade decided by a net vote: of
//	                      the n samples of P (and earlier answers) that pass
//	                      the visible tests, those that agree with the
//	                      answer on a share of the probes, less those that
//	                      do not, must reach a margin: the answer must sit
//	                      in the majority cluster by that much. The share
//	                      and margin are chosen by cross-validation over
//	                      the other problems (calibrate.go)
//	vote:M1,M2,…          every model answers; the plurality wins (math)
//	best-of-n:M,n         up to n samples of M, the first that passes the
//	                      visible tests (code)
type Strategy struct {
	Name   string
	Kind   string // single, cascade, cross, score, vote, best-of-n
	Models []string
	N      int // best-of-n: samples; cross: partner samples per check
	// Partner is the model a cross-check samples (cross:…+P*n).
	Partner string
}

// ParseStrategy parses a strategy as written on the command line.
func ParseStrategy(s string) (Strategy, error) {
	kind, arg, ok := strings.Cut(strings.TrimSpace(s), ":")
	st := Strategy{Name: strings.TrimSpace(s), Kind: kind}
	if !ok || arg == "" {
		return st, fmt.Errorf("strategy %q: want KIND:ARGS, e.g. single:gpt-4-1106-preview, cascade:A>B, cross:A>B>C, score:A>B+P*3, vote:A,B,C, best-of-n:A,5", s)
	}
	switch kind {
	case "single":
		st.Models = []string{arg}
	case "cascade", "cross", "score":
		if kind == "cross" || kind == "score" {
			if chain, partner, ok := strings.Cut(arg, "+"); ok {
				p, n, _ := strings.Cut(partner, "*")
				k, err := strconv.Atoi(strings.TrimSpace(n))
				if strings.TrimSpace(p) == "" || err != nil || k < 1 || k > 32 {
					return st, fmt.Errorf("strategy %q: want %s:A>B+PARTNER*N with N from 1 to 32", s, kind)
				}
				arg, st.Partner, st.N = chain, strings.TrimSpace(p), k
			}
		}
		st.Models = splitList(arg, ">")
		if len(st.Models) < 2 {
			return st, fmt.Errorf("strategy %q: a %s needs two models or more, cheapest first: %s:A>B", s, kind, kind)
		}
	case "vote":
		st.Models = splitList(arg, ",")
		if len(st.Models) < 2 {
			return st, fmt.Errorf("strategy %q: a vote needs two models or more: vote:A,B,C", s)
		}
	case "best-of-n":
		parts := splitList(arg, ",")
		n, err := 0, error(nil)
		if len(parts) == 2 {
			n, err = strconv.Atoi(parts[1])
		}
		if len(parts) != 2 || err != nil || n < 1 || n > 100 {
			return st, fmt.Errorf("strategy %q: want best-of-n:MODEL,N with N from 1 to 100", s)
		}
		st.Models, st.N = parts[:1], n
	default:
		return st, fmt.Errorf("strategy %q: unknown kind %q (single, cascade, cross, score, vote, best-of-n)", s, kind)
	}
	for _, m := range st.Models {
		if m == "" {
			return st, fmt.Errorf("strategy %q: an empty model name", s)
		}
		if strings.ContainsAny(m, "+*") {
			return st, fmt.Errorf("strategy %q: bad model name %q (only cross and score take a partner: cross:A>B+P*N)", s, m)
		}
	}
	return st, nil
}

func splitList(s, sep string) []string {
	parts := strings.Split(s, sep)
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// calibrationAgree is the share a calibration run records the vote at.
// Below 1, so that exceptions agree with each other, as they do at every
// share a calibration may choose; the run accepts every answer that
// passes the tests whatever the vote says.
const calibrationAgree = 0.7
