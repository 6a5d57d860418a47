package verify

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Arithmetic checks the working of a numeric answer, for math word
// problems, where models slip on a sum as often as on the reasoning. It
// recomputes every calculation the answer shows — GSM8K-style
// annotations (<<16-3=13>>) and inline equations ("9 * $2 = $18") — and
// fails on any whose stated result is wrong (beyond rounding), naming
// each. An answer with no final number fails; one that shows no
// calculation at all is unsure. It calls no model and runs no code.
func (v *Verifiers) Arithmetic(sub Submission) Verdict {
	text := sub.Report
	if _, ok := FinalNumber(text); !ok {
		return fail(KindArithmetic, "the answer states no final number")
	}
	var wrong []string
	checked := 0
	check := func(expr, stated string) {
		want, err := parseNumber(stated)
		if err != nil {
			return
		}
		got, err := evalArithmetic(expr)
		if err != nil {
			return // not arithmetic this checker reads: neither right nor wrong
		}
		checked++
		if !closeEnough(got, want, stated) {
			wrong = append(wrong, fmt.Sprintf("%s = %s, but %s is %s", strings.TrimSpace(expr), strings.TrimSpace(stated), strings.TrimSpace(expr), formatNumber(got)))
		}
	}
	for _, m := range annotation.FindAllStringSubmatch(text, -1) {
		check(m[1], m[2])
	}
	plain := annotation.ReplaceAllString(text, " ")
	for _, m := range equation.FindAllStringSubmatchIndex(plain, -1) {
		expr, stated := plain[m[2]:m[3]], plain[m[4]:m[5]]
		before, after := byte(' '), byte(' ')
		if m[0] > 0 {
			before = plain[m[0]-1]
		}
		if m[1] < len(plain) {
			after = plain[m[1]]
		}
		if n := m[1] + 1; (after == 'e' || after == 'E') && n < len(plain) && (isDigit(plain[n]) || plain[n] == '-' || plain[n] == '+') {
			continue // 3.5e2: a number this checker does not read
		}
		switch {
		case before == ':' || after == ':' || before == '.' || before == '/':
			continue // 1:30 + 2 = 3:30, a clock; part of a longer number or a date
		case before == '-':
			expr = "-" + expr // -5 + 3 = -2
		}
		check(expr, stated)
	}
	switch {
	case len(wrong) > 0:
		return fail(KindArithmetic, headTail(fmt.Sprintf("%d of %d calculations are wrong:\n- %s", len(wrong), checked, strings.Join(wrong, "\n- ")), maxEvidence))
	case checked == 0:
		return unsure(KindArithmetic, "the answer shows no calculation to check")
	}
	return pass(KindArithmetic, fmt.Sprintf("all %d calculations check out", checked))
}

var (
	// annotation is GSM8K's calculator annotation: <<expr=result>>.
	annotation = regexp.MustCompile(`<<([^<>=]+)=([^<>=]+)>>`)
	// equation is an inline calculation: numbers joined by operators,
	// then "=" and a number. Money signs, thousands separators, percent
	// signs and parentheses may appear.
	equation = regexp.MustCompile(`((?:\(\s*)*\$?\d[\d,]*(?:\.\d+)?%?(?:\s*\))*(?:\s*[-+*/×÷x]\s*(?:\(\s*)*\$?\d[\d,]*(?:\.\d+)?%?(?:\s*\))*)+)\s*=\s*(\$?-?\d[\d,]*(?:\.\d+)?%?)`)
)

// closeEnough reports whether got matches the stated result, allowing
// for the rounding the statement shows (to its decimals, or to a whole
// number for counts of things).
func closeEnough(got, want float64, stated string) bool {
	if math.Abs(got-want) <= 1e-6*math.Max(1, math.Abs(want)) {
		return true
	}
	decimals := 0
	if i := strings.IndexByte(stated, '.'); i >= 0 {
		decimals = len(strings.TrimRight(stated[i+1:], " "))
	}
	scale := math.Pow(10, float64(decimals))
	if math.Abs(math.Round(got*scale)/scale-want) < 0.5/scale+1e-9 || math.Abs(math.Trunc(got*scale)/scale-want) < 1e-9 {
		return true
	}
	return decimals == 0 && math.Abs(got-want) < 1 // a whole count, rounded either way
}

func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(strings.NewReplacer("$", "", ",", "").Replace(s))
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if pct {
		f /= 100
	}
	return f, err
}

func formatNumber(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// evalArithmetic evaluates numbers with + - * / (also ×, ÷ and x for
// times) and parentheses, by precedence.
func evalArithmetic(expr string) (float64, error) {
	p := &arith{s: strings.NewReplacer("×", "*", "÷", "/", "x", "*", "X", "*", "$", "", ",", "").Replace(expr)}
	v, err := p.sum()
	if err != nil {
		return 0, err
	}
	p.space()
	if p.i != len(p.s) {
		return 0, fmt.Errorf("unexpected %q", p.s[p.i:])
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("no value")
	}
	return v, nil
}

type arith struct {
	s string
	i int
}

func (p *arith) space() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *arith) sum() (float64, error) {
	v, err := p.product()
	for err == nil {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '+' && p.s[p.i] != '-') {
			break
		}
		op := p.s[p.i]
		p.i++
		start := p.i
		var w float64
		if w, err = p.product(); err == nil && strings.HasSuffix(strings.TrimSpace(p.s[start:p.i]), "%") {
			// $80 - 25% means a quarter of 80 off: not what is written.
			return 0, fmt.Errorf("a percentage added or taken off")
		}
		if op == '+' {
			v += w
		} else {
			v -= w
		}
	}
	return v, err
}

func (p *arith) product() (float64, error) {
	v, err := p.factor()
	for err == nil {
		p.space()
		if p.i >= len(p.s) || (p.s[p.i] != '*' && p.s[p.i] != '/') {
			break
		}
		op := p.s[p.i]
		p.i++
		var w float64
		if w, err = p.factor(); op == '*' {
			v *= w
		} else {
			v /= w
		}
	}
	return v, err
}

func (p *arith) factor() (float64, error) {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '(' {
		p.i++
		v, err := p.sum()
		p.space()
		if err != nil || p.i >= len(p.s) || p.s[p.i] != ')' {
			return 0, fmt.Errorf("unbalanced parentheses")
		}
		p.i++
		return v, nil
	}
	if p.i < len(p.s) && p.s[p.i] == '-' {
		p.i++
		v, err := p.factor()
		return -v, err
	}
	start := p.i
	for p.i < len(p.s) && (isDigit(p.s[p.i]) || p.s[p.i] == '.') {
		p.i++
	}
	if start == p.i {
		return 0, fmt.Errorf("a number expected at %q", p.s[start:])
	}
	v, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if p.i < len(p.s) && p.s[p.i] == '%' {
		p.i++
		v /= 100
	}
	return v, err
}
