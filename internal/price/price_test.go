package price

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hive-swarm/hive/internal/llm"
)

func TestParseUSD(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		err  bool
	}{
		{"2", 2 * Dollar, false},
		{"2.5", 2_500_000_000, false},
		{"$0.75", 750_000_000, false},
		{"0.000001", 1_000, false},
		{"0.000000001", 1, false},
		{"0.0000000010", 1, false}, // trailing zero beyond nano is fine
		{" 3 ", 3 * Dollar, false},
		{".5", 500_000_000, false},
		{"2.", 2 * Dollar, false},
		{"0.075", 75_000_000, false},
		{"9223372036", 9_223_372_036 * Dollar, false},
		{"9223372036.854775807", math.MaxInt64, false},
		{"9223372036.854775808", 0, true},
		{"99999999999", 0, true},
		{"0.0000000001", 0, true}, // finer than a nano-dollar
		{"", 0, true},
		{"$", 0, true},
		{".", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1e3", 0, true},
		{"1,000", 0, true},
		{"1.2.3", 0, true},
		{"abc", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseUSD(tt.in)
		if tt.err {
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("ParseUSD(%q) = %v, %v; want ErrSyntax", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestPerMTokFloat(t *testing.T) {
	for _, tt := range []struct {
		f    float64
		want Amount
	}{{3.0, 3 * Dollar}, {0.075, 75_000_000}, {0.1, 100_000_000}, {18.75, 18_750_000_000}, {0.005, 5_000_000}} {
		got, err := PerMTokFloat(tt.f)
		if err != nil || got != tt.want {
			t.Errorf("PerMTokFloat(%v) = %d, %v; want %d", tt.f, got, err, tt.want)
		}
	}
	for _, f := range []float64{-1, math.NaN(), math.Inf(1), 1e-12} {
		if _, err := PerMTokFloat(f); err == nil {
			t.Errorf("PerMTokFloat(%v) succeeded", f)
		}
	}
}

func TestAmountString(t *testing.T) {
	tests := []struct {
		a    Amount
		want string
	}{
		{0, "$0"},
		{3 * Dollar, "$3.00"},
		{1_234_567_890, "$1.23"},
		{1_235_000_000, "$1.24"}, // half up
		{1234 * Dollar, "$1234.00"},
		{750_000_000, "$0.75"},
		{1_234_000, "$0.001234"},
		{1_234_567, "$0.001235"},
		{1_000, "$0.000001"},
		{500, "$0.000001"},
		{499, "$0.000000499"},
		{75, "$0.000000075"},
		{1, "$0.000000001"},
		{999_999_999, "$1.00"},
		{10_000_000, "$0.01"},
		{-500_000_000, "-$0.50"},
		{-2 * Dollar, "-$2.00"},
		{math.MaxInt64, "$9223372036.85"},
		{math.MinInt64, "-$9223372036.85"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("Amount(%d).String() = %q; want %q", int64(tt.a), got, tt.want)
		}
	}
	if got := Amount(1_500_000_000).Dollars(); got != 1.5 {
		t.Errorf("Dollars() = %v", got)
	}
}

func TestCostExact(t *testing.T) {
	sonnet := Price{Model: "s", Input: MustParseUSD("3"), Output: MustParseUSD("15"),
		CacheWrite: MustParseUSD("3.75"), CacheRead: MustParseUSD("0.30"), BatchDiscountPct: 50}
	mini := Price{Model: "m", Input: MustParseUSD("0.075"), Output: MustParseUSD("0.30")}
	noCache := Price{Model: "n", Input: MustParseUSD("10"), Output: MustParseUSD("30")}
	tests := []struct {
		name  string
		p     Price
		u     llm.Usage
		want  Amount
		batch Amount
	}{
		{"1M input at $3", sonnet, llm.Usage{InputTokens: 1_000_000}, 3_000_000_000, 1_500_000_000},
		{"1 token at $0.075", mini, llm.Usage{InputTokens: 1}, 75, 75},
		{"1 output at $15", sonnet, llm.Usage{OutputTokens: 1}, 15_000, 7_500},
		{"a fraction of a nano-dollar rounds up", Price{Model: "x", Input: MustParseUSD("0.0000015")}, llm.Usage{InputTokens: 1}, 1, 1},
		{"all four kinds", sonnet, llm.Usage{InputTokens: 1000, OutputTokens: 500, CacheWriteTokens: 2000, CacheReadTokens: 10_000},
			3_000_000 + 7_500_000 + 7_500_000 + 3_000_000, (3_000_000 + 7_500_000 + 7_500_000 + 3_000_000) / 2},
		{"1-hour writes at twice input", sonnet, llm.Usage{CacheWriteTokens: 3000, CacheWrite1hTokens: 1000},
			7_500_000 + 6_000_000, (7_500_000 + 6_000_000) / 2},
		{"1-hour writes beyond the writes count as writes", sonnet, llm.Usage{CacheWriteTokens: 1000, CacheWrite1hTokens: 5000}, 6_000_000, 3_000_000},
		{"zero cache rates bill at input", noCache, llm.Usage{CacheWriteTokens: 100, CacheReadTokens: 100}, 2_000_000, 2_000_000},
		{"negative tokens count as zero", sonnet, llm.Usage{InputTokens: -5, OutputTokens: 1}, 15_000, 7_500},
		{"empty usage", sonnet, llm.Usage{}, 0, 0},
		{"huge usage saturates", Price{Model: "h", Input: maxRate}, llm.Usage{InputTokens: math.MaxInt64}, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := tt.p.Cost(tt.u); got != tt.want {
			t.Errorf("%s: Cost = %d; want %d", tt.name, got, tt.want)
		}
		if got := tt.p.BatchCost(tt.u); got != tt.batch {
			t.Errorf("%s: BatchCost = %d; want %d", tt.name, got, tt.batch)
		}
	}
}

// TestCostRoundingBound checks the documented bound: a cost is never under
// the exact value and over it by under 1 n$ per component, so a million
// small calls cost at least, and under 4 n$ a call more than, their summed
// usage.
func TestCostRoundingBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range Table() {
		var sum Amount
		var total llm.Usage
		const calls = 1_000_000
		n := calls
		if testing.Short() || p.Model != "claude-sonnet-4-5" {
			n = 2_000 // the full million on one row keeps the test fast
		}
		for range n {
			u := llm.Usage{
				InputTokens:      rng.Int64N(3000),
				OutputTokens:     rng.Int64N(700),
				CacheWriteTokens: rng.Int64N(50),
				CacheReadTokens:  rng.Int64N(5000),
			}
			sum += p.Cost(u)
			total = total.Add(u)
		}
		whole := p.Cost(total)
		if sum < whole || sum-whole >= Amount(4*n) {
			t.Errorf("%s: sum of %d calls %d vs cost of summed usage %d: outside [0, 4n)", p.Model, n, sum, whole)
		}
	}
}

func TestTableRows(t *testing.T) {
	rows := Table()
	if len(rows) < 30 {
		t.Fatalf("only %d rows", len(rows))
	}
	for i, p := range rows {
		if i > 0 && rows[i-1].Model >= p.Model {
			t.Errorf("not sorted: %s before %s", rows[i-1].Model, p.Model)
		}
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
		if !strings.HasPrefix(p.Source, "https://") {
			t.Errorf("%s: source %q is not a URL", p.Model, p.Source)
		}
		if len(p.Date) < 4 || p.Date[:2] != "20" {
			t.Errorf("%s: date %q", p.Model, p.Date)
		}
		if p.Input <= 0 || p.Output <= 0 {
			t.Errorf("%s: zero rate", p.Model)
		}
		// Claude: 5-minute writes 1.25x, reads 0.1x input, batch 50%; Haiku
		// 3 is the documented exception (1.2x, 0.12x on the page).
		if strings.HasPrefix(p.Model, "claude-") && p.Model != "claude-3-haiku-20240307" {
			if p.BatchDiscountPct != 50 || p.CacheRead*10 != p.Input {
				t.Errorf("%s: batch %d%%, cache read %s vs input %s", p.Model, p.BatchDiscountPct, p.CacheRead, p.Input)
			}
			if p.CacheWrite*4 != p.Input*5 {
				t.Errorf("%s: cache write %s is not 1.25x input %s", p.Model, p.CacheWrite, p.Input)
			}
		}
		if strings.Contains(p.Source, "together.ai") && !strings.Contains(p.Note, "Estimate") {
			t.Errorf("%s: open-weight estimate not marked in Note", p.Model)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		id    string
		model string // "" = unknown
	}{
		{"claude-sonnet-4-5", "claude-sonnet-4-5"},
		{"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"anthropic:claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
		{"Anthropic/Claude-Haiku-4-5", "claude-haiku-4-5"},
		{"openai:gpt-4o-mini", "gpt-4o-mini"},
		{"openai/gpt-4o-2024-11-20", "gpt-4o"},
		{"gpt-4o-2024-05-13", "gpt-4o-2024-05-13"},
		{"mistralai/mixtral-8x7b-instruct-v0.1", "mixtral-8x7b-instruct"},
		{" starcoder ", "starcoder"},
		{"codellama", "codellama"},
		{"gpt-3.5-turbo-0613", "gpt-3.5-turbo-0613"},
		{"gpt-4-1106-preview", "gpt-4-1106-preview"},
		{"reflexion", "reflexion"},
		{"codegen-16b", "codegen-16b"},
		{"gpt3-6b", "gpt3-6b"},
		{"gpt3-175b", "gpt3-175b"},
		{"mixtral-8x7b-instruct", "mixtral-8x7b-instruct"},
		// Unknown: never guessed.
		{"gpt-4o-2099-01-01", ""},          // unlisted snapshot: no fallback to gpt-4o
		{"claude-sonnet-4-5-20991231", ""}, // same
		{"together:gpt-4o", ""},            // reseller prefix is not stripped
		{"gpt-4", ""},
		{"", ""},
		{"anthropic:", ""},
		{"no-such-model", ""},
	}
	for _, tt := range tests {
		p, ok := Lookup(tt.id)
		if tt.model == "" {
			if ok {
				t.Errorf("Lookup(%q) = %s; want unknown", tt.id, p.Model)
			}
			continue
		}
		if !ok || p.Model != tt.model {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.id, p.Model, ok, tt.model)
		}
	}
	// Historical prices the eval depends on.
	p, _ := Lookup("gpt-4-1106-preview")
	if p.Cost(llm.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}) != 40*Dollar {
		t.Errorf("gpt-4-1106-preview: 1M in + 1M out = %s; want $40", p.Cost(llm.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}))
	}
	r, _ := Lookup("reflexion")
	if r.Input != p.Input || r.Output != p.Output {
		t.Errorf("reflexion not priced as gpt-4-1106-preview")
	}
	// A returned row is a copy.
	a, _ := Lookup("gpt-4o")
	a.Aliases[0] = "mutated"
	if b, _ := Lookup("gpt-4o"); b.Aliases[0] == "mutated" {
		t.Error("Lookup returned shared aliases")
	}
}

func TestCatalogOverride(t *testing.T) {
	base, _ := Lookup("claude-sonnet-4-5")
	in, err := PerMTok("2.5")
	if err != nil {
		t.Fatal(err)
	}
	pct := 40
	over := base.With(Override{Input: &in, BatchDiscountPct: &pct})
	if over.Input != 2_500_000_000 || over.Output != base.Output || over.Source != "config" || over.BatchDiscountPct != 40 {
		t.Fatalf("With: %+v", over)
	}
	newRow := Price{Model: "local-llama", Input: 1, Output: 2, Source: "config", Date: "2026-11-28"}
	c, err := Builtin().With(over, newRow)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Lookup("claude-sonnet-4-5-20250929"); !ok || p.Input != 2_500_000_000 {
		t.Errorf("override not found by alias: %+v %v", p, ok)
	}
	if p, ok := c.Lookup("local-llama"); !ok || p.Output != 2 {
		t.Errorf("added row: %+v %v", p, ok)
	}
	// Overriding by alias replaces the canonical row.
	c2, err := Builtin().With(Price{Model: "claude-sonnet-4-5-20250929", Input: 7, Output: 7})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := c2.Lookup("claude-sonnet-4-5"); p.Input != 7 || len(c2.Rows()) != len(Table()) {
		t.Errorf("override by alias: %+v, %d rows", p, len(c2.Rows()))
	}
	// The built-in table is untouched.
	if p, _ := Lookup("claude-sonnet-4-5"); p.Input != 3*Dollar {
		t.Errorf("built-in changed: %s", p.Input)
	}
	// Invalid rows and duplicate ids are refused.
	if _, err := Builtin().With(Price{Model: "bad", Input: -1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative rate: %v", err)
	}
	if _, err := NewCatalog([]Price{{Model: "a"}, {Model: "b", Aliases: []string{"A"}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate id: %v", err)
	}
	var nilCat *Catalog
	if _, ok := nilCat.Lookup("gpt-4o"); ok {
		t.Error("nil catalog found a model")
	}
}

func TestWorstCase(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range Table() {
		for range 200 {
			in, out := rng.Int64N(200_000), rng.Int64N(64_000)
			w := p.WorstCase(in, out)
			// Any split of the input, any output up to the cap, costs no more.
			a := rng.Int64N(in + 1)
			b := rng.Int64N(in - a + 1)
			u := llm.Usage{InputTokens: a, CacheWriteTokens: b, CacheReadTokens: in - a - b, OutputTokens: rng.Int64N(out + 1)}
			if c := p.Cost(u); c > w {
				t.Fatalf("%s: cost %d of %+v exceeds worst case %d", p.Model, c, u, w)
			}
			// With 1-hour writes among them, WorstCaseHour holds it.
			u.CacheWrite1hTokens = rng.Int64N(b + 1)
			if c, wh := p.Cost(u), p.WorstCaseHour(in, out); c > wh || wh < w {
				t.Fatalf("%s: cost %d of %+v exceeds worst case %d (or under %d)", p.Model, c, u, wh, w)
			}
			// Through the batch API, at its discount.
			if c, wb := p.BatchCost(u), p.BatchWorstCase(in, out, true); c > wb || (p.BatchDiscountPct > 0 && in+out > 1000 && wb >= p.WorstCaseHour(in, out)) {
				t.Fatalf("%s: batch cost %d of %+v exceeds batch worst case %d, or it is no cheaper than %d", p.Model, c, u, wb, p.WorstCaseHour(in, out))
			}
			u.CacheWrite1hTokens = 0
			if c, wb := p.BatchCost(u), p.BatchWorstCase(in, out, false); c > wb {
				t.Fatalf("%s: batch cost %d of %+v exceeds batch worst case %d", p.Model, c, u, wb)
			}
		}
	}
	s, _ := Lookup("claude-sonnet-4-5")
	if got := s.WorstCase(1_000_000, 1_000_000); got != MustParseUSD("18.75") { // writes at $3.75 + output $15
		t.Errorf("sonnet worst case %s; want $18.75", got)
	}
	if got := s.BatchWorstCase(1_000_000, 1_000_000, false); got != MustParseUSD("9.375") { // half
		t.Errorf("sonnet batch worst case %s; want $9.375", got)
	}
}
