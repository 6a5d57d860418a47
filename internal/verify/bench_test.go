package verify

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"
)

// humanEvalLike returns 50 small problems: a correct function and a few
// asserts, like HumanEval's.
func humanEvalLike() []struct{ code, tests string } {
	templates := []struct{ code, tests string }{
		{"def add_k(x):\n    return x + {K}\n", "assert add_k(0) == {K}\nassert add_k(1) == {K} + 1\nassert add_k(-{K}) == 0\n"},
		{"def sum_list(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total * {K}\n", "assert sum_list([]) == 0\nassert sum_list([1, 2, 3]) == 6 * {K}\n"},
		{"def rev(s):\n    return s[::-1] * {K}\n", "assert rev('') == ''\nassert rev('abc') == 'cba' * {K}\n"},
		{"def is_pal(s):\n    s = ''.join(c.lower() for c in s if c.isalnum())\n    return s == s[::-1]\n", "assert is_pal('A man, a plan, a canal: Panama')\nassert not is_pal('ab{K}')\n"},
		{"def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n", "assert fib(0) == 0\nassert fib(10) == 55\nassert fib({K}) >= 0\n"},
		{"def vowels(s):\n    return sum(c in 'aeiou' for c in s.lower())\n", "assert vowels('Hello') == 2\nassert vowels('x' * {K}) == 0\n"},
		{"def largest(xs):\n    return max(xs) if xs else None\n", "assert largest([]) is None\nassert largest([{K}, -1, 3]) == max({K}, 3)\n"},
		{"import math\ndef fact(n):\n    return math.prod(range(1, n + 1))\n", "assert fact(0) == 1\nassert fact(5) == 120\nassert fact({K}) > 0\n"},
		{"def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n", "assert evens([1, 2, 3, 4]) == [2, 4]\nassert evens(list(range({K}))) == list(range(0, {K}, 2))\n"},
		{"def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n", "assert gcd(12, 18) == 6\nassert gcd({K}, 0) == {K}\n"},
	}
	var out []struct{ code, tests string }
	for k := 1; k <= 5; k++ {
		for _, tp := range templates {
			k := strconv.Itoa(k)
			out = append(out, struct{ code, tests string }{strings.ReplaceAll(tp.code, "{K}", k), strings.ReplaceAll(tp.tests, "{K}", k)})
		}
	}
	return out
}

// BenchmarkVerifyTests verifies 50 code answers, two at a time as on a
// two-core machine: "sandbox" through the tests verifier, "plain" (the
// baseline) by running the same 50 programs with python3 directly.
func BenchmarkVerifyTests(b *testing.B) {
	problems := humanEvalLike()
	b.Run("plain", func(b *testing.B) {
		// The real interpreter, as the sandbox resolves it, not a pyenv
		// shim that would add a second of shell to every run.
		out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			b.Fatal(err)
		}
		py := strings.TrimSpace(string(out))
		dir := b.TempDir()
		var files []string
		for i, p := range problems {
			f := filepath.Join(dir, fmt.Sprintf("p%d.py", i))
			if err := os.WriteFile(f, []byte(joinProgram(p.code, p.tests).source), 0o644); err != nil {
				b.Fatal(err)
			}
			files = append(files, f)
		}
		for b.Loop() {
			var g errgroup.Group
			g.SetLimit(2)
			for _, f := range files {
				g.Go(func() error {
					if out, err := exec.Command(py, "-E", "-s", f).CombinedOutput(); err != nil {
						return fmt.Errorf("%s: %v\n%s", f, err, out)
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(problems)*b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
	b.Run("sandbox", func(b *testing.B) {
		v := newVerifiers(b)
		for b.Loop() {
			g, ctx := errgroup.WithContext(context.Background())
			g.SetLimit(2)
			for _, p := range problems {
				g.Go(func() error {
					got := v.Tests(ctx, Spec{Kind: KindTests, Code: p.tests}, Submission{Artifacts: map[string]string{"code": p.code}})
					if got.Outcome != Pass {
						return fmt.Errorf("%s: %s", got.Outcome, got.Evidence)
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(problems)*b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
}
