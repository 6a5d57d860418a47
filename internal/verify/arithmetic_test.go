package verify

import (
	"strings"
	"testing"
)

func TestArithmetic(t *testing.T) {
	v := New(nil, nil)
	tests := []struct {
		name, answer, outcome string
		evidence              []string
	}{
		{"annotations right", "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18", Pass, []string{"all 3 calculations check out"}},
		{"inline slip", "She has 16 - 3 = 12 eggs left, and 12 - 4 = 8.\nSo 8 * $2 = $16.\n#### 16", Fail, []string{"1 of 3 calculations are wrong", "16 - 3 = 12, but 16 - 3 is 13"}},
		{"annotation slip", "Total <<5*12=50>>50 apples. The answer is 50.", Fail, []string{"5*12 = 50, but 5*12 is 60"}},
		{"money and separators", "It costs $1,200 / 4 = $300 each, and 300 × 3 = 900.\nThe answer is 900", Pass, nil},
		{"rounding as stated", "10 / 3 = 3.33 hours, so about 3.33 * 60 = 199.8 minutes, 200 ÷ 7 = 28 boxes. Answer: 28", Pass, nil},
		{"percent and parentheses", "20% * 50 = 10 and (3 + 4) x 2 = 14. #### 14", Pass, nil},
		{"no final number", "She sells the eggs for a profit.", Fail, []string{"no final number"}},
		{"nothing to check", "The answer is 7.", Unsure, []string{"no calculation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Verify(testCtx(t), Spec{Kind: KindArithmetic}, Submission{Report: tt.answer}, nil)
			checkVerdict(t, got, tt.outcome, tt.evidence...)
			if got.Verifier != KindArithmetic {
				t.Errorf("verifier %q", got.Verifier)
			}
		})
	}
}

func TestEvalArithmetic(t *testing.T) {
	good := map[string]float64{"1 + 2 * 3": 7, "(1 + 2) * 3": 9, "10 / 4": 2.5, "-3 + 5": 2, "2 x 3 × 4 ÷ 8": 3, "$1,000 - 1": 999, "50%*8": 4}
	for in, want := range good {
		if got, err := evalArithmetic(in); err != nil || got != want {
			t.Errorf("%q = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1 +", "(1 + 2", "1 / 0", "2 apples", "3 ** 2"} {
		if got, err := evalArithmetic(bad); err == nil {
			t.Errorf("%q = %v, want an error", bad, got)
		}
	}
	if !strings.Contains(formatNumber(0.1+0.2), "0.3") {
		t.Error(formatNumber(0.1 + 0.2))
	}
}

// Phrasings the checker must not call wrong.
func TestArithmeticNoFalseFailures(t *testing.T) {
	v := New(nil, nil)
	for _, s := range []string{
		"The change is -5 + 3 = -2 degrees. The answer is -2",
		"She ate 3/4 = 75% of it. The answer is 75",
		"$80 - 25% = $60. The answer is 60",
		"It takes 3-4 days; 2 x 3 = 6. The answer is 6",
		"On 2023-10-05 she had 10 + 5 = 15. The answer is 15",
		"12 * 1.5 = 18 hours, 18 / 6 = 3. Answer: 3",
		"1 + 2 = 3.5e2. The answer is 3",
		"5 * (2 + 3 = 25. The answer is 25",
		"Time: 1:30 + 2 = 3:30. The answer is 3",
		"From 10/2 = 5 boxes. The answer is 5",
	} {
		if got := v.Arithmetic(Submission{Report: s}); got.Outcome == Fail {
			t.Errorf("%q: %s", s, got.Evidence)
		}
	}
}
