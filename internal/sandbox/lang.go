package sandbox

import "fmt"

// ParseCodeLang is [ParseLang] for a language that a model names (the
// run_code tool, a verify spec): only the interpreters Python, JavaScript
// and shell. Exec and the registered programs are Hive's own to start.
func ParseCodeLang(s string) (Lang, error) {
	l, err := ParseLang(s)
	if err != nil || l == Python || l == JavaScript || l == Shell {
		return l, err
	}
	return "", fmt.Errorf("unknown language %q (want python, javascript or shell)", s)
}
