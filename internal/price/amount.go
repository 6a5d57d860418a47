package price

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is an exact sum of money in nano-dollars (1e-9 USD). An int64
// holds about ±9.2 billion dollars, far beyond any budget Hive enforces.
//
// Costs are computed and summed as Amounts only; [Amount.Dollars] exists
// for JSON output and plots, never for arithmetic.
type Amount int64

// Common amounts.
const (
	NanoDollar  Amount = 1
	MicroDollar Amount = 1_000
	Cent        Amount = 10_000_000
	Dollar      Amount = 1_000_000_000
)

// Dollars returns a as a float64 number of dollars, for JSON output only.
func (a Amount) Dollars() float64 { return float64(a) / float64(Dollar) }

// String formats a for people. The rounding is for display only:
//
//   - zero is "$0";
//   - one dollar or more shows cents: "$3.00", "$1234.57";
//   - under a dollar shows up to 6 decimals, trailing zeros trimmed but at
//     least two kept: "$0.75", "$0.001234";
//   - a non-zero amount under half a micro-dollar, which 6 decimals would
//     show as zero, shows all 9: "$0.000000075".
//
// Negative amounts carry a leading minus: "-$0.50".
func (a Amount) String() string {
	if a == 0 {
		return "$0"
	}
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign = "-"
		u = uint64(-a) // correct for MinInt64 too, as uint64 arithmetic wraps
	}
	const d = uint64(Dollar)
	if u >= d {
		cents := (u + 5_000_000) / 10_000_000 // round half up to cents
		return fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)
	}
	micros := (u + 500) / 1000 // round half up to micro-dollars
	if micros == 0 {
		return sign + "$0." + trimFrac(fmt.Sprintf("%09d", u), 2)
	}
	if micros == 1_000_000 { // 0.9999995 and up round to a dollar
		return sign + "$1.00"
	}
	return sign + "$0." + trimFrac(fmt.Sprintf("%06d", micros), 2)
}

// trimFrac drops trailing zeros of a fraction's digits, keeping at least min.
func trimFrac(s string, min int) string {
	for len(s) > min && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	return s
}

// ErrSyntax is returned (wrapped) for a string that is not a dollar amount.
var ErrSyntax = errors.New("not a dollar amount")

// ParseUSD parses a non-negative decimal number of dollars, with an optional
// leading "$": "2", "2.5", "$0.75", "0.000001", ".5". It is exact: up to 9
// decimals are kept; a tenth non-zero decimal is an error rather than a
// silent rounding. Signs, exponents, thousands separators and amounts above
// [math.MaxInt64] nano-dollars are rejected.
func ParseUSD(s string) (Amount, error) {
	orig := s
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("parse %q: %w", orig, ErrSyntax)
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("parse %q: %w", orig, ErrSyntax)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 9 {
		return 0, fmt.Errorf("parse %q: more precise than a nano-dollar: %w", orig, ErrSyntax)
	}
	var w uint64
	if whole != "" {
		var err error
		w, err = strconv.ParseUint(whole, 10, 64)
		if err != nil || w > math.MaxInt64/uint64(Dollar) {
			return 0, fmt.Errorf("parse %q: too large: %w", orig, ErrSyntax)
		}
	}
	var f uint64
	if frac != "" {
		f, _ = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	n := w*uint64(Dollar) + f
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("parse %q: too large: %w", orig, ErrSyntax)
	}
	return Amount(n), nil
}

// MustParseUSD is ParseUSD for constants; it panics on a bad string.
func MustParseUSD(s string) Amount {
	a, err := ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return a
}

// PerMTok parses a price in dollars per million tokens, as price tables
// and hive.toml write them ("3", "0.075"). The result is the [Amount] per
// million tokens that [Price] fields hold; it is ParseUSD under the name
// the config reads.
func PerMTok(usdPerMTok string) (Amount, error) { return ParseUSD(usdPerMTok) }

// PerMTokFloat converts a price decoded from TOML as a float (input = 3.0)
// exactly: the float is formatted as the shortest decimal that reads back
// as the same float, which is the literal the user wrote for any literal of
// up to 15 significant digits, and that decimal is parsed with ParseUSD. No
// arithmetic is done in floating point. NaN, infinities and negative
// values are errors.
func PerMTokFloat(usdPerMTok float64) (Amount, error) {
	if math.IsNaN(usdPerMTok) || math.IsInf(usdPerMTok, 0) || usdPerMTok < 0 {
		return 0, fmt.Errorf("price %v: %w", usdPerMTok, ErrSyntax)
	}
	return ParseUSD(strconv.FormatFloat(usdPerMTok, 'f', -1, 64))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
