// Package secret keeps known secret values out of what Hive writes down.
//
// Secrets live only in the environment of Hive's own process: the API keys
// that models name (api_key_env), the token of hive serve, and whatever
// else the user lists. Nothing Hive runs on a model's behalf sees that
// environment, so no secret should ever reach a model, a journal, a log or
// a screen. A [Redactor] is the second line of defence for when one does
// anyway: every value it knows is replaced, wherever it appears, by a
// placeholder that names the variable it came from ("[redacted HIVE_TOKEN]")
// and never the value.
//
// A value also matches in the forms it takes inside a JSON string (escaped
// quotes, backslashes, HTML characters), since most of what Hive journals
// is JSON.
package secret

import (
	"bytes"
	"encoding/json"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// MinLen is the shortest value treated as a secret: shorter ones ("1",
// "true", a port) would redact ordinary text, and no real key is that short.
const MinLen = 8

// A Redactor replaces known secret values. The zero value and nil redact
// nothing. It is safe for concurrent use.
type Redactor struct {
	needles [][]byte // every form of every value, longest first
	strs    []string // needles as strings
	repl    *strings.Replacer
}

// New returns a redactor of the values of named (variable name → value).
// Values shorter than [MinLen] are ignored.
func New(named map[string]string) *Redactor {
	type pair struct{ needle, name string }
	seen := map[string]bool{}
	var pairs []pair
	keys := make([]string, 0, len(named))
	for k := range named {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same placeholder for a value held by two names, every time
	for _, name := range keys {
		v := named[name]
		if len(v) < MinLen {
			continue
		}
		for _, form := range forms(v) {
			if !seen[form] {
				seen[form] = true
				pairs = append(pairs, pair{form, "[redacted " + name + "]"})
			}
		}
	}
	// Longest first: a value that contains another is replaced whole.
	sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i].needle) > len(pairs[j].needle) })
	r := &Redactor{}
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		r.needles = append(r.needles, []byte(p.needle))
		r.strs = append(r.strs, p.needle)
		args = append(args, p.needle, p.name)
	}
	r.repl = strings.NewReplacer(args...)
	return r
}

// forms returns v as written and as it appears inside JSON strings.
func forms(v string) []string {
	out := []string{v}
	b, _ := json.Marshal(v) // HTML-escaped, as encoding/json writes by default
	if s := string(b[1 : len(b)-1]); s != v {
		out = append(out, s)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	if s := strings.TrimSuffix(buf.String(), "\n"); len(s) >= 2 {
		if s = s[1 : len(s)-1]; s != v && s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

// secretName matches the names of environment variables that hold secrets
// by convention.
var secretName = regexp.MustCompile(`(?i)(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)`)

// Env returns the variables of environ ("NAME=value") that names lists,
// and every variable whose name says it holds a secret (…_KEY, …_TOKEN,
// …SECRET…, …PASSWORD…, …CREDENTIAL…), for [New].
func Env(environ []string, names ...string) map[string]string {
	want := map[string]bool{}
	for _, n := range names {
		if n != "" {
			want[n] = true
		}
	}
	named := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			continue
		}
		if want[k] || secretName.MatchString(k) {
			named[k] = v
		}
	}
	return named
}

// Empty reports whether r knows no secret.
func (r *Redactor) Empty() bool { return r == nil || len(r.needles) == 0 }

// String returns s with every secret replaced.
func (r *Redactor) String(s string) string {
	if r.Empty() || !r.containsString(s) {
		return s
	}
	return r.repl.Replace(s)
}

// Bytes returns b with every secret replaced: b itself when it holds none,
// else a new slice.
func (r *Redactor) Bytes(b []byte) []byte {
	if r.Empty() || !r.contains(b) {
		return b
	}
	return []byte(r.repl.Replace(string(b)))
}

// Contains reports whether b holds a secret.
func (r *Redactor) Contains(b []byte) bool { return !r.Empty() && r.contains(b) }

func (r *Redactor) contains(b []byte) bool {
	for _, n := range r.needles {
		if bytes.Contains(b, n) {
			return true
		}
	}
	return false
}

func (r *Redactor) containsString(s string) bool {
	for _, n := range r.strs {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// Writer returns a writer that redacts each write to w. A secret split
// across two writes is not seen; the loggers and printers it wraps write a
// record or a line at a time.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if r.Empty() {
		return w
	}
	return &writer{r: r, w: w}
}

type writer struct {
	mu sync.Mutex // serializes writes, as the loggers that share w expect
	r  *Redactor
	w  io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(w.r.Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
