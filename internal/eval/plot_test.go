package eval

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/price"
)

// renderRealisticReport is a made-up but plausible HumanEval report: costs
// from free to a few dollars (a log axis), a reference, two cascades on
// the frontier and a dominated vote.
func renderRealisticReport() *Report {
	usd := price.MustParseUSD
	s := func(name string, correct int, cost string, calls map[string]int) StrategyResult {
		return StrategyResult{Name: name, Correct: correct, Problems: 164, Accuracy: float64(correct) / 164, Cost: usd(cost), Calls: calls}
	}
	return &Report{
		Suite:     "humaneval",
		Problems:  164,
		Reference: "single:gpt-4-1106-preview",
		Strategies: []StrategyResult{
			s("single:gpt-3.5-turbo-0613", 118, "0.19", map[string]int{"gpt-3.5-turbo-0613": 164}),
			s("single:claude-3-haiku", 124, "0.11", map[string]int{"claude-3-haiku": 164}),
			s("single:gpt-4-1106-preview", 144, "3.21", map[string]int{"gpt-4-1106-preview": 164}),
			s("cascade:gpt-3.5→gpt-4 (tests)", 142, "1.22", map[string]int{"gpt-3.5-turbo-0613": 164, "gpt-4-1106-preview": 31}),
			s("cascade:haiku→gpt-4 (tests+judge)", 145, "1.05", map[string]int{"claude-3-haiku": 190, "gpt-4-1106-preview": 26}),
			s("vote:gpt-3.5×5", 122, "0.95", map[string]int{"gpt-3.5-turbo-0613": 820}),
			s("replay:cached answers", 66, "0", nil),
		},
	}
}

// svgDoc is what a test learns by walking an SVG with encoding/xml.
type svgDoc struct {
	classes map[string]int    // class attribute → elements
	labels  []string          // text of class="label" elements
	texts   []string          // all character data
	attrs   map[string]string // the root element's attributes
}

func parseSVG(t *testing.T, data []byte) svgDoc {
	t.Helper()
	doc := svgDoc{classes: map[string]int{}, attrs: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(data))
	var inLabel, root bool
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if !root {
				root = true
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element is %v", tok.Name)
				}
				for _, a := range tok.Attr {
					doc.attrs[a.Name.Local] = a.Value
				}
			}
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					doc.classes[tok.Name.Local+"."+a.Value]++
					inLabel = a.Value == "label"
				}
				if (a.Name.Local == "href") || strings.Contains(a.Value, "url(") {
					t.Errorf("external reference: <%s %s=%q>", tok.Name.Local, a.Name.Local, a.Value)
				}
			}
			if n := tok.Name.Local; n == "script" || n == "style" || n == "image" || n == "foreignObject" {
				t.Errorf("SVG holds a <%s>", n)
			}
		case xml.EndElement:
			inLabel = false
		case xml.CharData:
			s := string(tok)
			if strings.TrimSpace(s) == "" {
				continue
			}
			doc.texts = append(doc.texts, s)
			if inLabel {
				doc.labels = append(doc.labels, s)
			}
		}
	}
	return doc
}

func TestWriteSVG(t *testing.T) {
	r := renderRealisticReport()
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	doc := parseSVG(t, b.Bytes())

	if doc.attrs["width"] != "720" {
		t.Errorf("width = %q", doc.attrs["width"])
	}
	points := doc.classes["circle.point"] + doc.classes["circle.point frontier"]
	if points != len(r.Strategies) {
		t.Errorf("%d points, want one per strategy (%d): %v", points, len(r.Strategies), doc.classes)
	}
	// Free cache, haiku, cascade via haiku: nothing else is both cheaper
	// and at least as accurate.
	if got := doc.classes["circle.point frontier"]; got != 3 {
		t.Errorf("%d frontier points, want 3", got)
	}
	if doc.classes["polyline.frontier"] != 1 || doc.classes["circle.reference"] != 1 {
		t.Errorf("want one frontier line and one reference ring: %v", doc.classes)
	}
	if len(doc.labels) != len(r.Strategies) {
		t.Errorf("labels %q, want one per strategy", doc.labels)
	}
	for i, s := range r.Strategies {
		if i < len(doc.labels) && doc.labels[i] != s.Name {
			t.Errorf("label %d = %q, want %q", i, doc.labels[i], s.Name)
		}
	}
	all := strings.Join(doc.texts, "\n")
	for _, want := range []string{
		"humaneval", "Accuracy (% of problems solved)", "Cost of the suite (USD, log scale)",
		"$0", "$0.1", "$1", "$5", "Pareto frontier", "reference",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no text %q in the SVG", want)
		}
	}

	// Deterministic: the same report, the same bytes.
	var again bytes.Buffer
	if err := r.WriteSVG(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Error("two renderings of one report differ")
	}

	// For a person to look at: HIVE_EVAL_SVG_DIR=dir go test -run TestWriteSVG
	if dir := os.Getenv("HIVE_EVAL_SVG_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "report.svg"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteSVGRsvg hands the plot to a real SVG renderer when the machine
// has one (rsvg-convert, from librsvg2-bin): librsvg is stricter than
// encoding/xml about what it draws.
func TestWriteSVGRsvg(t *testing.T) {
	bin, err := exec.LookPath("rsvg-convert")
	if err != nil {
		t.Skip("rsvg-convert not installed (apt-get install librsvg2-bin)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "report.svg"), filepath.Join(dir, "report.png")
	var b bytes.Buffer
	if err := renderRealisticReport().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-o", out, in)
	if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
		t.Fatalf("rsvg-convert: %v\n%s", err, msg)
	}
	png, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("rsvg-convert wrote %d bytes, not a PNG", len(png))
	}
}

func TestWriteSVGEscapes(t *testing.T) {
	r := renderSmallReport()
	r.Suite = `suite "<x>" & 'y'`
	r.Strategies[2].Name = `cascade<script>&amp;"q"`
	r.Strategies[3].Name = "bad\x00byte\xff"
	var b bytes.Buffer
	if err := r.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b.Bytes(), []byte("<script>")) {
		t.Errorf("a name reached the SVG unescaped:\n%s", b.String())
	}
	doc := parseSVG(t, b.Bytes())
	if got, want := doc.labels[2], `cascade<script>&amp;"q"`; got != want {
		t.Errorf("label decodes to %q, want %q", got, want)
	}
	if got, want := doc.labels[3], "bad\uFFFDbyte\uFFFD"; got != want {
		t.Errorf("label with invalid characters decodes to %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(doc.texts, "\n"), `suite "<x>" & 'y'`) {
		t.Errorf("suite name lost in escaping: %q", doc.texts)
	}
}

func TestWriteSVGEdgeCases(t *testing.T) {
	usd := price.MustParseUSD
	for _, tt := range []struct {
		name string
		r    *Report
		want int // points
	}{
		{"empty", &Report{Suite: "none"}, 0},
		{"all free", &Report{Strategies: []StrategyResult{{Name: "a", Accuracy: 0.5}, {Name: "b", Accuracy: 0.7}}}, 2},
		{"one", &Report{Strategies: []StrategyResult{{Name: "a", Accuracy: 1, Cost: usd("2")}}}, 1},
		{"same accuracy", &Report{Strategies: []StrategyResult{{Name: "a", Cost: usd("1")}, {Name: "b", Cost: usd("1.5")}}}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.r.WriteSVG(&b); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b.Bytes(), []byte("NaN")) || bytes.Contains(b.Bytes(), []byte("Inf")) {
				t.Errorf("non-finite coordinate:\n%s", b.String())
			}
			doc := parseSVG(t, b.Bytes())
			if slices.Contains(doc.texts, "reference") {
				t.Error("legend shows a reference the report does not have")
			}
			if got := doc.classes["circle.point"] + doc.classes["circle.point frontier"]; got != tt.want {
				t.Errorf("%d points, want %d", got, tt.want)
			}
		})
	}
}

func TestCostAxisScale(t *testing.T) {
	tests := []struct {
		name   string
		costs  []float64
		log    bool
		labels string // the tick labels, space-separated
	}{
		{"narrow", []float64{0.3, 0.9, 1.2}, false, "$0 $0.5 $1 $1.5"},
		{"exactly 10×", []float64{0.1, 1}, false, "$0 $0.2 $0.4 $0.6 $0.8 $1"},
		{"zero does not count", []float64{0, 0.5, 4}, false, "$0 $1 $2 $3 $4"},
		{"wide", []float64{0.0012, 3.2}, true, "$0.001 $0.01 $0.1 $1 $10"},
		{"just over 10×", []float64{0.11, 1.2}, true, "$0.1 $0.2 $0.5 $1 $2"},
		{"on the steps", []float64{0.02, 0.5}, true, "$0.02 $0.05 $0.1 $0.2 $0.5"},
		{"wide with zero", []float64{0, 0.11, 3.21}, true, "$0 $0.1 $0.2 $0.5 $1 $2 $5"},
		{"very wide", []float64{0.000004, 0.3, 120}, true, "$0.000001 $0.00001 $0.0001 $0.001 $0.01 $0.1 $1 $10 $100 $1000"},
		{"all free", []float64{0, 0}, false, "$0 $0.002 $0.004 $0.006 $0.008 $0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := svgCostAxis(tt.costs, 100, 600)
			if a.log != tt.log {
				t.Errorf("log = %v, want %v", a.log, tt.log)
			}
			var labels []string
			for _, tk := range a.ticks {
				labels = append(labels, tk.label)
			}
			if got := strings.Join(labels, " "); got != tt.labels {
				t.Errorf("ticks %q, want %q", got, tt.labels)
			}
			// Every cost lands inside the axis, in order.
			prev := -1.0
			for _, c := range tt.costs {
				p := a.pos(c)
				if p < 100 || p > 600 || p < prev {
					t.Errorf("cost %v at %v, outside [100, 600] or out of order", c, p)
				}
				prev = p
			}
		})
	}

	// The plot says which it chose.
	var b bytes.Buffer
	if err := renderSmallReport().WriteSVG(&b); err != nil { // $0.12 to $3.20: log
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "log scale") {
		t.Error("the axis title does not say log scale")
	}
}

// TestSVGLabelsDoNotCollide checks the label layout of the realistic
// report: every label inside the picture, none covering another label or
// a point.
func TestSVGLabelsDoNotCollide(t *testing.T) {
	p := svgPlotFor(renderRealisticReport())
	labels := p.placeLabels()
	if len(labels) != len(p.points) {
		t.Fatalf("%d labels for %d points", len(labels), len(p.points))
	}
	for i, l := range labels {
		name := p.points[i].s.Name
		if l.box.x0 < 0 || l.box.x1 > svgWidth || l.box.y0 < svgTop || l.box.y1 > svgBottom {
			t.Errorf("label %q outside the plot: %+v", name, l.box)
		}
		for j, o := range labels[:i] {
			if l.box.overlaps(o.box) {
				t.Errorf("labels %q and %q overlap: %+v %+v", name, p.points[j].s.Name, l.box, o.box)
			}
		}
		for _, pt := range p.points {
			if l.box.overlaps(svgBox{pt.x - svgPointR, pt.y - svgPointR, pt.x + svgPointR, pt.y + svgPointR}) {
				t.Errorf("label %q covers the point of %q", name, pt.s.Name)
			}
		}
	}
}
