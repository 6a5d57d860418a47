package eval

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hive-swarm/hive/internal/price"
)

// renderSmallReport is a hand-made report: a cheap and a strong single
// model (the reference), a cascade between them, and a free strategy that
// made no calls.
func renderSmallReport() *Report {
	return &Report{
		Suite:     "humaneval",
		Problems:  164,
		Reference: "single:gpt-4-1106-preview",
		Strategies: []StrategyResult{
			{
				Name: "single:gpt-3.5-turbo-0613", Accuracy: 118.0 / 164, Correct: 118, Problems: 164,
				Cost:  price.MustParseUSD("0.12"),
				Calls: map[string]int{"gpt-3.5-turbo-0613": 164},
			},
			{
				Name: "single:gpt-4-1106-preview", Accuracy: 144.0 / 164, Correct: 144, Problems: 164,
				Cost:  price.MustParseUSD("3.20"),
				Calls: map[string]int{"gpt-4-1106-preview": 164},
			},
			{
				Name: "cascade:tests", Accuracy: 141.0 / 164, Correct: 141, Problems: 164,
				Cost:           price.MustParseUSD("1.216"),
				Calls:          map[string]int{"gpt-4-1106-preview": 31, "gpt-3.5-turbo-0613": 164},
				Escalations:    31,
				EscalationRate: 31.0 / 164,
				FalseAccepts:   3,
				FalseRejects:   2,
			},
			{
				Name: "replay:cache", Accuracy: 41.0 / 164, Correct: 41, Problems: 164,
			},
		},
	}
}

// tableRow returns the line of out whose first cell is name.
func tableRow(t *testing.T, out, name string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	t.Fatalf("no row for %q in\n%s", name, out)
	return ""
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := renderSmallReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)

	header := strings.SplitN(out, "\n", 2)[0]
	for _, want := range []string{"humaneval", "164 problems", "4 strategies", "relative to single:gpt-4-1106-preview"} {
		if !strings.Contains(header, want) {
			t.Errorf("header %q lacks %q", header, want)
		}
	}

	rows := []struct {
		name string
		want []string // in order along the row
	}{
		{"single:gpt-3.5-turbo-0613", []string{"72.0% (118/164)", "$0.12", "0.04×", "0.0%", " 0 ", " 0 ", "gpt-3.5-turbo-0613×164"}},
		{"single:gpt-4-1106-preview (ref)", []string{"87.8% (144/164)", "$3.20", "1.00×", "gpt-4-1106-preview×164"}},
		{"cascade:tests", []string{"86.0% (141/164)", "$1.22", "0.38×", "18.9%", " 3 ", " 2 ", "gpt-3.5-turbo-0613×164 gpt-4-1106-preview×31"}},
		{"replay:cache", []string{"25.0% (41/164)", "$0", "0×", "—"}},
	}
	for _, row := range rows {
		line := tableRow(t, out, row.name)
		rest := line
		for _, w := range row.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("row %q: %q missing or out of order in %q", row.name, w, line)
				break
			}
			rest = rest[i+len(w):]
		}
	}

	// Columns line up: the cost column starts at the same rune offset on
	// the header row and every strategy row, "×" and "—" included.
	col := func(line, cell string) int {
		i := strings.Index(line, cell)
		if i < 0 {
			t.Fatalf("%q not in %q", cell, line)
		}
		return utf8.RuneCountInString(line[:i])
	}
	headerRow := tableRow(t, out, "strategy")
	want := col(headerRow, "calls")
	for _, c := range []struct{ row, cell string }{
		{"single:gpt-3.5-turbo-0613", "gpt-3.5"},
		{"cascade:tests", "gpt-3.5"},
		{"replay:cache", "—"},
	} {
		line := tableRow(t, out, c.row)
		// The calls column is the last; find its cell from the right.
		i := strings.LastIndex(line, "  ")
		if got := utf8.RuneCountInString(line[:i+2]); got != want {
			t.Errorf("row %q: calls column at %d, header at %d\n%s", c.row, got, want, out)
		}
	}

	for _, want := range []string{"false acc: wrong answers the verifier accepted", "false rej: right answers the verifier rejected", "escalated:"} {
		if !strings.Contains(out, want) {
			t.Errorf("footer lacks %q", want)
		}
	}
}

func TestWriteTableNoReference(t *testing.T) {
	r := renderSmallReport()
	r.Reference = "single:gpt-5" // not among the strategies
	r.Strategies[0].Name = "tab\tin\nname"
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(strings.SplitN(out, "\n", 2)[0], "no reference strategy") {
		t.Errorf("header does not say there is no reference:\n%s", out)
	}
	if strings.Contains(out, "(ref)") {
		t.Errorf("a row is marked as reference:\n%s", out)
	}
	for _, name := range []string{"tab in name", "single:gpt-4-1106-preview", "cascade:tests", "replay:cache"} {
		line := tableRow(t, out, name)
		// accuracy, cost, then the ratio cell is a dash.
		// frontier, accuracy (two fields), cost, then the ratio cell is a dash.
		if f := strings.Fields(strings.TrimPrefix(line, name)); len(f) < 5 || f[4] != "—" {
			t.Errorf("row %q: ratio cell is not a dash without a reference: %q", name, line)
		}
	}
}

func TestBest(t *testing.T) {
	r := renderSmallReport()
	tests := []struct {
		ratio float64
		want  string // "" for nil
	}{
		{10, "single:gpt-4-1106-preview"},
		{1, "single:gpt-4-1106-preview"},
		{0.5, "cascade:tests"},
		{0.38, "cascade:tests"}, // 1.216/3.20 = 0.38: the bound is inclusive
		{0.1, "single:gpt-3.5-turbo-0613"},
		{0.01, "replay:cache"},
		{-1, ""},
	}
	for _, tt := range tests {
		got := r.Best(tt.ratio)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != tt.want {
			t.Errorf("Best(%v) = %q, want %q", tt.ratio, name, tt.want)
		}
	}

	r.Reference = ""
	if got := r.Best(100); got != nil {
		t.Errorf("Best without a reference = %q, want nil", got.Name)
	}
	r.Reference = "replay:cache" // free: no ratio can be computed
	if got := r.Best(100); got != nil {
		t.Errorf("Best with a free reference = %q, want nil", got.Name)
	}
}

func TestFrontier(t *testing.T) {
	usd := price.MustParseUSD
	r := &Report{Strategies: []StrategyResult{
		{Name: "E", Cost: usd("3.2"), Accuracy: 0.878},
		{Name: "C", Cost: usd("1.0"), Accuracy: 0.50},   // B is as accurate and cheaper
		{Name: "A", Cost: 0, Accuracy: 0.25},            // free
		{Name: "F", Cost: usd("3.2"), Accuracy: 0.80},   // E: same cost, more accurate
		{Name: "D", Cost: usd("1.216"), Accuracy: 0.86}, //
		{Name: "G", Cost: usd("5"), Accuracy: 0.878},    // E: same accuracy, cheaper
		{Name: "B", Cost: usd("0.12"), Accuracy: 0.50},  //
		{Name: "H", Cost: usd("1.216"), Accuracy: 0.86}, // tied with D: both stay
		{Name: "I", Cost: usd("0.5"), Accuracy: 0.40},   // B dominates on both
	}}
	var got []string
	for _, s := range r.Frontier() {
		got = append(got, s.Name)
	}
	if want := "A B D H E"; strings.Join(got, " ") != want {
		t.Errorf("Frontier = %v, want %s", got, want)
	}
	if got := (&Report{}).Frontier(); len(got) != 0 {
		t.Errorf("Frontier of an empty report = %v", got)
	}
}

// A strategy whose cost is only a lower bound may really cost more: it
// dominates nothing on the frontier; one with an unpriced model has no
// cost to be placed by, and is not on it.
func TestFrontierExactCostsOnly(t *testing.T) {
	r := &Report{Strategies: []StrategyResult{
		{Name: "exact", Accuracy: 0.90, Cost: price.MustParseUSD("1.00")},
		{Name: "bound", Accuracy: 0.91, Cost: price.MustParseUSD("0.50"), LowerBound: []string{"reflexion"}},
		{Name: "unpriced", Accuracy: 0.92, Cost: price.MustParseUSD("0.40"), Unpriced: []string{"local"}},
		{Name: "dominated", Accuracy: 0.89, Cost: price.MustParseUSD("1.10")},
	}}
	var names []string
	for _, s := range r.Frontier() {
		names = append(names, s.Name)
	}
	if want := []string{"bound", "exact"}; !slices.Equal(names, want) {
		t.Errorf("frontier %v, want %v", names, want)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"exact": "yes", "dominated": "no"} {
		if f := strings.Fields(strings.TrimPrefix(tableRow(t, b.String(), name), name)); len(f) == 0 || f[0] != want {
			t.Errorf("row %s: frontier cell %q, want %q", name, f, want)
		}
	}
}

// A cost computed from a system recorded by its last answer only is a
// lower bound, and the table says so in both cost cells and the legend.
func TestWriteTableLowerBound(t *testing.T) {
	r := renderSmallReport()
	r.Strategies = append(r.Strategies, StrategyResult{
		Name: "single:reflexion", Accuracy: 150.0 / 164, Correct: 150, Problems: 164,
		Cost: price.MustParseUSD("1.60"), Calls: map[string]int{"reflexion": 164}, LowerBound: []string{"reflexion"},
	})
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	f := strings.Fields(strings.TrimPrefix(tableRow(t, out, "single:reflexion"), "single:reflexion"))
	if len(f) < 5 || f[3] != "≥$1.60" || f[4] != "≥0.50×" {
		t.Errorf("lower-bound row cells %q", f)
	}
	if !strings.Contains(out, "only the final answers of reflexion are recorded") {
		t.Errorf("no legend line for the lower bound:\n%s", out)
	}
	if g := strings.Fields(strings.TrimPrefix(tableRow(t, out, "cascade:tests"), "cascade:tests")); strings.HasPrefix(g[3], "≥") {
		t.Errorf("a whole cost marked as a lower bound: %q", g)
	}
}

func TestParseStrategy(t *testing.T) {
	good := map[string]Strategy{
		"single:m":      {Name: "single:m", Kind: "single", Models: []string{"m"}},
		"cascade:a > b": {Name: "cascade:a > b", Kind: "cascade", Models: []string{"a", "b"}},
		"cross:a>b>c":   {Name: "cross:a>b>c", Kind: "cross", Models: []string{"a", "b", "c"}},
		"cross:a>b+p*3": {Name: "cross:a>b+p*3", Kind: "cross", Models: []string{"a", "b"}, Partner: "p", N: 3},
		"score:a>b+p*9": {Name: "score:a>b+p*9", Kind: "score", Models: []string{"a", "b"}, Partner: "p", N: 9},
		"best-of-n:m,5": {Name: "best-of-n:m,5", Kind: "best-of-n", Models: []string{"m"}, N: 5},
		"vote:a,b,c":    {Name: "vote:a,b,c", Kind: "vote", Models: []string{"a", "b", "c"}},
	}
	for in, want := range good {
		got, err := ParseStrategy(in)
		if err != nil || got.Name != want.Name || got.Kind != want.Kind || strings.Join(got.Models, ",") != strings.Join(want.Models, ",") || got.Partner != want.Partner || got.N != want.N {
			t.Errorf("ParseStrategy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"cross:a":         "two models or more",
		"cross:a>b+p":     "cross:A>B+PARTNER*N",
		"cross:a>b+p*0":   "cross:A>B+PARTNER*N",
		"cross:a>b+*2":    "cross:A>B+PARTNER*N",
		"cascade:a>b+p*2": "only cross and score take a partner",
		"score:a>b+p*40":  "score:A>B+PARTNER*N",
		"best-of-n:m,0":   "N from 1 to 100",
		"guess:m":         "unknown kind",
		"single":          "want KIND:ARGS",
	}
	for in, want := range bad {
		if _, err := ParseStrategy(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseStrategy(%q) error %v, want it to say %q", in, err, want)
		}
	}
}

// A strategy that called a model without a price has no cost ratio: the
// cost it leaves out could be anything.
func TestUnpricedHasNoRatio(t *testing.T) {
	r := renderSmallReport()
	r.Strategies[2].Unpriced = []string{"mystery"}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	line := tableRow(t, b.String(), "cascade:tests")
	if !strings.Contains(line, "unknown (mystery unpriced)") {
		t.Fatalf("row %q", line)
	}
	if f := strings.Fields(strings.SplitN(line, "unpriced)", 2)[1]); len(f) == 0 || f[0] != "—" {
		t.Errorf("ratio cell of an unpriced strategy: %q", line)
	}
	if best := r.Best(100); best != nil && best.Name == "cascade:tests" {
		t.Error("Best picked a strategy of unknown cost")
	}
}
