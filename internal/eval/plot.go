package eval

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file plots a [Report] as a self-contained SVG: accuracy against
// cost, one labelled point per strategy, the Pareto frontier drawn as a
// line through its highlighted points. No scripts, no external fonts or
// stylesheets, so the file renders the same in a browser, an image viewer
// or a converter; the output depends only on the report.

// Plot geometry, in SVG user units (pixels at 100%).
const (
	svgWidth   = 720
	svgHeight  = 480
	svgLeft    = 72  // plot area
	svgRight   = 700 //
	svgTop     = 48  //
	svgBottom  = 388 //
	svgGutter  = 48  // room left of a log axis for strategies that cost $0
	svgFontPx  = 11  // point labels and ticks
	svgCharPx  = 6.0 // estimated advance of one character at svgFontPx (5.8 measured in librsvg's sans)
	svgPointR  = 4   // an ordinary point
	svgFrontR  = 5.5 // a point on the frontier
	svgRefR    = 9.5 // the ring around the reference strategy
	svgColor   = "#8c8c8c"
	svgFront   = "#c0392b"
	svgGrid    = "#e6e6e6"
	svgInk     = "#222222"
	svgLogSpan = 10 // costs spanning more than this factor get a log axis
)

// WriteSVG writes r as an SVG plot of accuracy (%) against cost (USD). The
// cost axis is logarithmic when the non-zero costs span more than 10×; a
// strategy that cost nothing then sits in a separate "$0" column at the
// left. Points on the Pareto frontier ([Report.Frontier]) are highlighted
// and joined by a line, the reference strategy is ringed.
func (r *Report) WriteSVG(w io.Writer) error {
	var b bytes.Buffer
	p := svgPlotFor(r)
	p.render(&b, r)
	_, err := w.Write(b.Bytes())
	return err
}

// svgPoint is one strategy placed on the plot.
type svgPoint struct {
	s        *StrategyResult
	x, y     float64
	frontier bool
	ref      bool
}

// svgPlot is a report laid out: axes chosen, points placed.
type svgPlot struct {
	x, y   svgAxis
	points []svgPoint // report order; strategies with no finite accuracy are left out
	front  []svgPoint // the frontier, by cost
}

func svgPlotFor(r *Report) svgPlot {
	var costs, accs []float64
	for i := range r.Strategies {
		s := &r.Strategies[i]
		if !svgFinite(s.Accuracy) {
			continue
		}
		costs = append(costs, math.Max(0, s.Cost.Dollars()))
		accs = append(accs, 100*s.Accuracy)
	}
	p := svgPlot{
		x: svgCostAxis(costs, svgLeft, svgRight),
		y: svgAccuracyAxis(accs, svgBottom, svgTop),
	}
	onFront := map[*StrategyResult]bool{}
	for _, s := range r.Frontier() {
		onFront[s] = true
	}
	for i := range r.Strategies {
		s := &r.Strategies[i]
		if !svgFinite(s.Accuracy) {
			continue
		}
		pt := svgPoint{
			s:        s,
			x:        p.x.pos(math.Max(0, s.Cost.Dollars())),
			y:        p.y.pos(100 * s.Accuracy),
			frontier: onFront[s],
			ref:      r.isReference(s),
		}
		p.points = append(p.points, pt)
	}
	for _, s := range r.Frontier() {
		for _, pt := range p.points {
			if pt.s == s {
				p.front = append(p.front, pt)
			}
		}
	}
	return p
}

func (p *svgPlot) render(b *bytes.Buffer, r *Report) {
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d" fill="%s">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight, svgFontPx, svgInk)
	title := fmt.Sprintf("Accuracy against cost, %d problems", r.Problems)
	if r.Suite != "" {
		title = r.Suite + ": a" + title[1:]
	}
	fmt.Fprintf(b, "<title>%s</title>\n", svgEsc(title))
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, svgHeight)
	fmt.Fprintf(b, `<text x="%d" y="26" text-anchor="middle" font-size="15" font-weight="bold">%s</text>`+"\n",
		svgWidth/2, svgEsc(title))

	p.renderAxes(b)

	// The frontier line under the points.
	if len(p.front) > 1 {
		var pts []string
		for _, pt := range p.front {
			pts = append(pts, svgNum(pt.x)+","+svgNum(pt.y))
		}
		fmt.Fprintf(b, `<polyline class="frontier" points="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"/>`+"\n",
			strings.Join(pts, " "), svgFront)
	}

	// Points: ordinary ones first so that the frontier is drawn on top.
	for _, front := range []bool{false, true} {
		for _, pt := range p.points {
			if pt.frontier != front {
				continue
			}
			if pt.ref {
				fmt.Fprintf(b, `<circle class="reference" cx="%s" cy="%s" r="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="3 2"/>`+"\n",
					svgNum(pt.x), svgNum(pt.y), svgNum(svgRefR), svgInk)
			}
			class, radius, fill := "point", float64(svgPointR), svgColor
			if front {
				class, radius, fill = "point frontier", svgFrontR, svgFront
			}
			tip := fmt.Sprintf("%s: %s accurate, %s", pt.s.Name, tablePercent(pt.s.Accuracy), tableCost(pt.s))
			fmt.Fprintf(b, `<circle class="%s" cx="%s" cy="%s" r="%s" fill="%s" stroke="#ffffff" stroke-width="1"><title>%s</title></circle>`+"\n",
				class, svgNum(pt.x), svgNum(pt.y), svgNum(radius), fill, svgEsc(tip))
		}
	}

	p.renderLabels(b)
	p.renderLegend(b)
	b.WriteString("</svg>\n")
}

func (p *svgPlot) renderAxes(b *bytes.Buffer) {
	b.WriteString(`<g class="axes">` + "\n")
	// Grid and tick labels.
	for _, t := range p.y.ticks {
		y := p.y.pos(t.v)
		fmt.Fprintf(b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s"/>`+"\n", svgLeft, svgNum(y), svgRight, svgNum(y), svgGrid)
		fmt.Fprintf(b, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", svgLeft-6, svgNum(y+4), svgEsc(t.label))
	}
	for _, t := range p.x.ticks {
		x := p.x.pos(t.v)
		fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s"/>`+"\n", svgNum(x), svgTop, svgNum(x), svgBottom, svgGrid)
		fmt.Fprintf(b, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", svgNum(x), svgBottom+16, svgEsc(t.label))
	}
	// The frame.
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999999"/>`+"\n",
		svgLeft, svgTop, svgRight-svgLeft, svgBottom-svgTop)
	if p.x.log && p.x.zero {
		// A break in the axis between the $0 column and the log scale.
		x := (p.x.zeroPx + p.x.p0) / 2
		for _, dx := range []float64{-3, 3} {
			fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#999999" stroke-width="1.5"/>`+"\n",
				svgNum(x+dx-3), svgBottom+5, svgNum(x+dx+3), svgBottom-5)
		}
	}
	// Axis titles.
	xTitle := "Cost of the suite (USD)"
	if p.x.log {
		xTitle = "Cost of the suite (USD, log scale)"
	}
	fmt.Fprintf(b, `<text class="axis-title" x="%d" y="%d" text-anchor="middle" font-size="13">%s</text>`+"\n",
		(svgLeft+svgRight)/2, svgBottom+38, svgEsc(xTitle))
	fmt.Fprintf(b, `<text class="axis-title" transform="rotate(-90)" x="%d" y="20" text-anchor="middle" font-size="13">Accuracy (%% of problems solved)</text>`+"\n",
		-(svgTop+svgBottom)/2)
	b.WriteString("</g>\n")
}

// svgBox is a rectangle in plot coordinates, for label placement.
type svgBox struct{ x0, y0, x1, y1 float64 }

func (a svgBox) overlaps(c svgBox) bool {
	return a.x0 < c.x1 && c.x0 < a.x1 && a.y0 < c.y1 && c.y0 < a.y1
}

// pointLabel is the text that names a point: the strategy, marked when
// its cost is only a lower bound.
func pointLabel(s *StrategyResult) string {
	if len(s.LowerBound) > 0 {
		return s.Name + " (cost ≥)"
	}
	return s.Name
}

// svgLabel is a placed point label.
type svgLabel struct {
	x, y   float64 // the text's anchor on its baseline
	anchor string  // text-anchor
	box    svgBox  // estimated extent
}

// renderLabels names every point at the places [svgPlot.placeLabels]
// chose.
func (p *svgPlot) renderLabels(b *bytes.Buffer) {
	b.WriteString(`<g class="labels">` + "\n")
	for i, l := range p.placeLabels() {
		pt := p.points[i]
		weight := ""
		if pt.frontier {
			weight = ` font-weight="bold"`
		}
		fmt.Fprintf(b, `<text class="label" x="%s" y="%s" text-anchor="%s" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"%s>%s</text>`+"\n",
			svgNum(l.x), svgNum(l.y), l.anchor, weight, svgEsc(pointLabel(pt.s)))
	}
	b.WriteString("</g>\n")
}

// placeLabels places a label for each point, in p.points order. Each
// takes the first of a few positions around its point that stays inside
// the picture and clears the points, the frontier line and the labels
// already placed; failing that, the one that covers least. Greedy, but
// deterministic and good enough for the handful of strategies a report
// holds. Widths are estimates: the plot embeds no font.
func (p *svgPlot) placeLabels() []svgLabel {
	// What labels should not cover: the points, the frontier line (as
	// small boxes along it), then the labels placed so far.
	var taken []svgBox
	for _, pt := range p.points {
		r := float64(svgRefR)
		taken = append(taken, svgBox{pt.x - r, pt.y - r, pt.x + r, pt.y + r})
	}
	linesFrom := len(taken)
	for i := 1; i < len(p.front); i++ {
		a, c := p.front[i-1], p.front[i]
		n := int(math.Hypot(c.x-a.x, c.y-a.y)/4) + 1
		for k := 0; k <= n; k++ {
			x, y := a.x+(c.x-a.x)*float64(k)/float64(n), a.y+(c.y-a.y)*float64(k)/float64(n)
			taken = append(taken, svgBox{x - 1.5, y - 1.5, x + 1.5, y + 1.5})
		}
	}
	labelsFrom := len(taken)
	bounds := svgBox{svgLeft + 2, svgTop + 2, svgWidth - 4, svgBottom - 2}
	inside := func(c svgBox) bool {
		return c.x0 >= bounds.x0 && c.x1 <= bounds.x1 && c.y0 >= bounds.y0 && c.y1 <= bounds.y1
	}
	// Frontier labels are placed first, so that they get the clear spots;
	// all are written in report order.
	order := make([]int, 0, len(p.points))
	for _, front := range []bool{true, false} {
		for i, pt := range p.points {
			if pt.frontier == front {
				order = append(order, i)
			}
		}
	}
	labels := make([]svgLabel, len(p.points))
	for _, i := range order {
		pt := p.points[i]
		text := pointLabel(pt.s)
		w := svgCharPx * float64(utf8.RuneCountInString(text))
		if pt.frontier {
			w *= 1.15 // bold: 1.14 measured
		}
		const h = svgFontPx
		gap := svgRefR + 2.0
		at := func(dx, dy float64, anchor string) svgLabel {
			x, base := pt.x+dx, pt.y+dy
			var x0 float64
			switch anchor {
			case "start":
				x0 = x
			case "end":
				x0 = x - w
			default:
				x0 = x - w/2
			}
			return svgLabel{x, base, anchor, svgBox{x0, base - h + 1, x0 + w, base + 3}}
		}
		cands := []svgLabel{
			at(gap, 4, "start"),
			at(-gap, 4, "end"),
			at(0, -gap-3, "middle"),
			at(0, gap+h, "middle"),
			at(-3, -gap-3, "start"),
			at(3, -gap-3, "end"),
			at(-3, gap+h, "start"),
			at(3, gap+h, "end"),
			at(gap-2, -gap+1, "start"),
			at(gap-2, gap+h-3, "start"),
			at(-gap+2, -gap+1, "end"),
			at(-gap+2, gap+h-3, "end"),
		}
		// The first candidate inside the picture that covers nothing, else
		// the one that covers least, where crossing the frontier line
		// costs far less than covering a point or a label; with no
		// candidate inside, the first.
		chosen, least := 0, math.MaxInt
		for k, c := range cands {
			if !inside(c.box) {
				continue
			}
			n, line := 0, false
			for j, t := range taken {
				switch {
				case !c.box.overlaps(t):
				case j >= linesFrom && j < labelsFrom:
					line = true
				default:
					n += 10
				}
			}
			if line { // a label may cross the line: its halo keeps it legible
				n++
			}
			if n < least {
				chosen, least = k, n
			}
			if n == 0 {
				break
			}
		}
		labels[i] = cands[chosen]
		taken = append(taken, cands[chosen].box)
	}
	return labels
}

func (p *svgPlot) renderLegend(b *bytes.Buffer) {
	const y = svgHeight - 22
	b.WriteString(`<g class="legend">` + "\n")
	x := float64(svgLeft)
	fmt.Fprintf(b, `<circle cx="%s" cy="%d" r="%s" fill="%s"/>`+"\n", svgNum(x+6), y, svgNum(svgPointR), svgColor)
	x += 16
	item := "strategy"
	fmt.Fprintf(b, `<text x="%s" y="%d">%s</text>`+"\n", svgNum(x), y+4, item)
	x += svgCharPx*float64(len(item)) + 24

	fmt.Fprintf(b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="%s" stroke-width="2"/>`+"\n", svgNum(x), y, svgNum(x+24), y, svgFront)
	fmt.Fprintf(b, `<circle cx="%s" cy="%d" r="%s" fill="%s" stroke="#ffffff"/>`+"\n", svgNum(x+12), y, svgNum(svgFrontR), svgFront)
	x += 30
	item = "Pareto frontier (not beaten on both cost and accuracy)"
	fmt.Fprintf(b, `<text x="%s" y="%d">%s</text>`+"\n", svgNum(x), y+4, item)
	x += svgCharPx*float64(len(item)) + 24

	for _, pt := range p.points {
		if !pt.ref {
			continue
		}
		fmt.Fprintf(b, `<circle cx="%s" cy="%d" r="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="3 2"/>`+"\n",
			svgNum(x+9), y, svgNum(svgRefR), svgInk)
		x += 24
		fmt.Fprintf(b, `<text x="%s" y="%d">reference</text>`+"\n", svgNum(x), y+4)
	}
	b.WriteString("</g>\n")
}

// svgTick is one labelled value on an axis.
type svgTick struct {
	v     float64
	label string
}

// svgAxis maps data values to pixels, linearly or by log10.
type svgAxis struct {
	log    bool
	lo, hi float64 // domain; positive when log
	p0, p1 float64 // pixels of lo and hi
	zero   bool    // log axis only: some value is 0 and sits in the gutter
	zeroPx float64 // where 0 sits on a log axis
	ticks  []svgTick
}

func (a svgAxis) pos(v float64) float64 {
	if a.log {
		if v <= 0 {
			return a.zeroPx
		}
		return a.p0 + (math.Log10(v)-math.Log10(a.lo))/(math.Log10(a.hi)-math.Log10(a.lo))*(a.p1-a.p0)
	}
	return a.p0 + (v-a.lo)/(a.hi-a.lo)*(a.p1-a.p0)
}

// svgCostAxis chooses the cost axis for costs in dollars (all ≥ 0). The
// axis is logarithmic, in whole decades, when the non-zero costs span more
// than [svgLogSpan]; linear from $0 otherwise.
func svgCostAxis(costs []float64, p0, p1 float64) svgAxis {
	minPos, maxPos, zero := math.Inf(1), 0.0, false
	for _, c := range costs {
		if c <= 0 {
			zero = true
			continue
		}
		minPos, maxPos = math.Min(minPos, c), math.Max(maxPos, c)
	}
	if maxPos > 0 && maxPos/minPos > svgLogSpan {
		// Round values to end the axis on and to label: 1-2-5 steps over
		// a few decades, whole decades beyond.
		mants := []int{1, 2, 5}
		if maxPos/minPos > 1000 {
			mants = []int{1}
		}
		type step struct{ mant, exp int }
		var steps []step
		for e := int(math.Floor(math.Log10(minPos))) - 1; e <= int(math.Ceil(math.Log10(maxPos)))+1; e++ {
			for _, m := range mants {
				steps = append(steps, step{m, e})
			}
		}
		val := func(s step) float64 { return float64(s.mant) * math.Pow10(s.exp) }
		first, last := 0, len(steps)-1
		for i, st := range steps {
			if val(st) <= minPos*(1+1e-9) {
				first = i
			}
		}
		for i := len(steps) - 1; i >= 0; i-- {
			if val(steps[i]) >= maxPos*(1-1e-9) {
				last = i
			}
		}
		a := svgAxis{log: true, lo: val(steps[first]), hi: val(steps[last]), p0: p0, p1: p1}
		if zero {
			a.zero, a.zeroPx, a.p0 = true, p0+svgGutter/4, p0+svgGutter
			a.ticks = append(a.ticks, svgTick{0, "$0"})
		}
		for _, st := range steps[first : last+1] {
			a.ticks = append(a.ticks, svgTick{val(st), svgUSD(st.mant, st.exp)})
		}
		return a
	}
	if maxPos == 0 {
		maxPos = 0.01 // everything free: show a cent of axis
	}
	a := svgAxis{lo: 0, p0: p0, p1: p1}
	mant, exp := svgNiceStep(maxPos / 5)
	step := float64(mant) * math.Pow10(exp)
	n := int(math.Ceil(maxPos/step - 1e-9))
	a.hi = float64(n) * step
	for i := 0; i <= n; i++ {
		a.ticks = append(a.ticks, svgTick{float64(i) * step, svgUSD(i*mant, exp)})
	}
	return a
}

// svgAccuracyAxis chooses the accuracy axis for accuracies in percent:
// the values' range with a margin, in round steps, within 0..100.
func svgAccuracyAxis(accs []float64, p0, p1 float64) svgAxis {
	lo, hi := 100.0, 0.0
	for _, v := range accs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if lo > hi { // no points
		lo, hi = 0, 100
	}
	pad := math.Max(2, (hi-lo)*0.1)
	lo, hi = math.Max(0, lo-pad), math.Min(100, hi+pad)
	mant, exp := svgNiceStep((hi - lo) / 5)
	step := float64(mant) * math.Pow10(exp)
	if step < 1 {
		mant, exp, step = 1, 0, 1
	}
	lo = math.Floor(lo/step+1e-9) * step
	hi = math.Min(100, math.Ceil(hi/step-1e-9)*step)
	if hi <= lo {
		hi = lo + step
	}
	a := svgAxis{lo: lo, hi: hi, p0: p0, p1: p1}
	for i := 0; ; i++ {
		v := lo + float64(i)*step
		if v > hi+1e-9 {
			break
		}
		a.ticks = append(a.ticks, svgTick{v, strconv.FormatFloat(v, 'f', 0, 64) + "%"})
	}
	return a
}

// svgNiceStep returns the round step (1, 2 or 5 × 10^exp) nearest above raw.
func svgNiceStep(raw float64) (mant, exp int) {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1, 0
	}
	exp = int(math.Floor(math.Log10(raw)))
	f := raw / math.Pow10(exp)
	switch {
	case f <= 1+1e-9:
		return 1, exp
	case f <= 2+1e-9:
		return 2, exp
	case f <= 5+1e-9:
		return 5, exp
	default:
		return 1, exp + 1
	}
}

// svgUSD formats mant × 10^exp dollars exactly, for tick labels: "$0.002",
// "$20", "$0".
func svgUSD(mant, exp int) string {
	if mant == 0 {
		return "$0"
	}
	s := strconv.FormatFloat(float64(mant)*math.Pow10(exp), 'f', max(0, -exp), 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return "$" + s
}

// svgNum formats a coordinate with one decimal: short, and the same on
// every machine.
func svgNum(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func svgFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

var svgEscaper = strings.NewReplacer(
	"&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;",
)

// svgEsc makes s safe as XML text or attribute value: markup characters
// escaped, invalid UTF-8 and the control characters XML 1.0 forbids
// replaced with U+FFFD.
func svgEsc(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, s)
	return svgEscaper.Replace(s)
}
