package suite

import "github.com/hive-swarm/hive/internal/verify"

// Correct reports whether the final number of answer equals gold, a
// number in any format, or a reference solution ending in "#### <gold>".
// Numbers are read by [verify.FinalNumber], the reading the vote verifier
// uses at run time, so that scoring and verification agree.
func Correct(answer, gold string) bool {
	g, ok := verify.FinalNumber(gold)
	if !ok {
		return false
	}
	a, ok := verify.FinalNumber(answer)
	return ok && a == g
}
