package verify

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// A task that gives Python code (a signature to complete, with helpers)
// expects the whole program back, and the tests run the submission alone:
// a submission that drops a function or class the task defines (a helper
// the model thought it need not repeat) may pass the tests that do not call
// it and fail every caller that does. DroppedDefs finds those definitions,
// so that the verifier fails them with a plain reason instead.

// taskDef finds top-level function and class definitions in a task's text.
var taskDef = regexp.MustCompile(`(?m)^(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)[ \t]*[(:]`)

// DroppedDefs returns the names the task defines at top level that code
// does not define (as a function, a class or an assignment), in the task's
// order.
func DroppedDefs(task, code string) []string {
	var missing []string
	for _, m := range taskDef.FindAllStringSubmatch(task, -1) {
		name := m[1]
		if slices.Contains(missing, name) || definesName(code, name) {
			continue
		}
		missing = append(missing, name)
	}
	return missing
}

// definesName reports whether Python code binds name at top level: a def,
// an async def, a class, an assignment or an import as name.
func definesName(code, name string) bool {
	q := regexp.QuoteMeta(name)
	re := regexp.MustCompile(`(?m)^(?:(?:async[ \t]+)?def[ \t]+` + q + `[ \t]*\(|class[ \t]+` + q + `\b|` + q + `[ \t]*(?::[^=\n]*)?=[^=]|(?:from[ \t]+\S+[ \t]+)?import[ \t].*\b` + q + `\b)`)
	return re.MatchString(code)
}

// droppedVerdict fails a submission that dropped the task's definitions,
// or returns false when it dropped none.
func droppedVerdict(kind, task, code string) (Verdict, bool) {
	missing := DroppedDefs(task, code)
	if len(missing) == 0 {
		return Verdict{}, false
	}
	return fail(kind, fmt.Sprintf("the task defines %s, which the submitted code does not: submit the whole program, with every function and class the task gives", quoteList(missing))), true
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}
