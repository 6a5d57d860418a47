// Package screen checks what enters a run and what leaves a worker against
// rules the operator can read: built-in detectors of credentials (the
// shapes of API keys, tokens and private keys), the operator's own
// regular expressions, and sizes. A task, from the command line, the API
// or an MCP client, is screened before its run starts; a worker's report
// before it is accepted. A finding names its rule; the rule's action says
// whether it blocks the text or is only recorded with its evidence.
//
// Rules are fast and explainable, not clever: they catch the shapes they
// are written for and nothing else (see the labelled set in testdata,
// with its precision and recall). Judging intent (cyber, bio or weapons
// misuse) takes a classifier model; this package does not call one.
package screen

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Where is what a text is: a task (a run's, or one the lead or a worker
// delegates), a report (a worker's, with its artifacts, or the lead's
// answer), or the arguments of a call to an MCP tool, which leave Hive.
type Where string

const (
	Task   Where = "task"
	Report Where = "report"
	Tool   Where = "tool"
)

// Action is what a finding does.
type Action string

const (
	Block Action = "block" // the text is refused, and the refusal names the rule
	Flag  Action = "flag"  // the finding is recorded; the text goes on
	Hold  Action = "hold"  // the text waits for a person to approve or deny it
	Off   Action = "off"   // the rule does not run
)

// A Rule is one check.
type Rule struct {
	Name     string
	Category string // "secret", "cyber", "bio", "size", …
	Pattern  *regexp.Regexp
	// On lists what the rule screens; empty means all: tasks, reports
	// and tool arguments.
	On     []Where
	Action Action
}

func (r *Rule) applies(w Where) bool { return len(r.On) == 0 || slices.Contains(r.On, w) }

// A Finding is a rule that matched.
type Finding struct {
	Rule     string `json:"rule"`
	Category string `json:"category"`
	Action   Action `json:"action"`
	// Evidence shows where the match is without repeating it: its first
	// characters, the rest masked (a credential's evidence must not be
	// the credential).
	Evidence string `json:"evidence"`
	Offset   int    `json:"offset"`
}

func (f Finding) String() string {
	if f.Rule == "classifier" {
		return fmt.Sprintf("classifier (%s): %s", f.Category, f.Evidence)
	}
	return fmt.Sprintf("rule %s (%s) matched %q at byte %d", f.Rule, f.Category, f.Evidence, f.Offset)
}

// A Refusal is a text a blocking rule refused.
type Refusal struct {
	Where   Where
	Finding Finding
}

func (r *Refusal) Error() string {
	hint := "remove it and try again"
	if r.Finding.Category == "secret" {
		hint = "remove the credential: it would be sent to model providers and journaled"
	}
	return fmt.Sprintf("the %s was refused by policy: %s; %s", r.Where, r.Finding, hint)
}

// Config is the screening part of the policy: [policy.screen] in
// hive.toml.
type Config struct {
	// Secrets is the action of the built-in credential detectors:
	// block (the default), hold, flag or off.
	Secrets Action `toml:"secrets"`
	// MaxTaskBytes and MaxReportBytes bound a task and a report; 0 for no
	// bound beyond Hive's own.
	MaxTaskBytes   int `toml:"max_task_bytes"`
	MaxReportBytes int `toml:"max_report_bytes"`
	// Rules are the operator's own.
	Rules []RuleConfig `toml:"rules"`
	// Classifier, when set, has a model read each task with a rubric of
	// misuse categories.
	Classifier *ClassifierConfig `toml:"classifier"`
}

// RuleConfig is one [[policy.screen.rules]] entry.
type RuleConfig struct {
	Name     string   `toml:"name"`
	Category string   `toml:"category"`
	Pattern  string   `toml:"pattern"` // Go regular expression syntax (RE2)
	On       []string `toml:"on"`      // "task", "report", "tool"; default all
	Action   string   `toml:"action"`  // block (default), hold or flag
}

// A Screen runs the rules of one policy. The zero value and nil screen
// nothing.
type Screen struct {
	rules      []Rule
	maxBytes   map[Where]int
	classifier *ClassifierConfig
}

// New builds the screen c describes, or says which rule is wrong.
func New(c Config) (*Screen, error) {
	s := &Screen{maxBytes: map[Where]int{Task: c.MaxTaskBytes, Report: c.MaxReportBytes}}
	if c.MaxTaskBytes < 0 || c.MaxReportBytes < 0 {
		return nil, errors.New("max_task_bytes and max_report_bytes take a size in bytes, 0 for none")
	}
	switch c.Secrets {
	case "", Block, Hold, Flag:
		act := c.Secrets
		if act == "" {
			act = Block
		}
		for _, d := range secretDetectors {
			s.rules = append(s.rules, Rule{Name: d.name, Category: "secret", Pattern: d.re, Action: act})
		}
	case Off:
	default:
		return nil, fmt.Errorf("secrets = %q: want block, hold, flag or off", c.Secrets)
	}
	if err := c.Classifier.check(); err != nil {
		return nil, err
	}
	s.classifier = c.Classifier
	seen := map[string]bool{}
	for i, rc := range c.Rules {
		if rc.Name == "" {
			return nil, fmt.Errorf("rule %d has no name: every rule needs one, for refusals to name it", i+1)
		}
		if seen[rc.Name] {
			return nil, fmt.Errorf("two rules are named %q", rc.Name)
		}
		seen[rc.Name] = true
		re, err := regexp.Compile(rc.Pattern)
		if err != nil || rc.Pattern == "" {
			return nil, fmt.Errorf("rule %q: pattern %q is not a regular expression (RE2 syntax): %v", rc.Name, rc.Pattern, err)
		}
		r := Rule{Name: rc.Name, Category: rc.Category, Pattern: re, Action: Action(rc.Action)}
		if r.Category == "" {
			r.Category = "custom"
		}
		switch r.Action {
		case "":
			r.Action = Block
		case Block, Hold, Flag:
		default:
			return nil, fmt.Errorf("rule %q: action %q: want block, hold or flag", rc.Name, rc.Action)
		}
		for _, w := range rc.On {
			switch Where(w) {
			case Task, Report, Tool:
				r.On = append(r.On, Where(w))
			default:
				return nil, fmt.Errorf("rule %q: on = %q: want \"task\", \"report\" or \"tool\"", rc.Name, w)
			}
		}
		s.rules = append(s.rules, r)
	}
	return s, nil
}

// Rules lists the screen's rules, the built-in ones first.
func (s *Screen) Rules() []Rule {
	if s == nil {
		return nil
	}
	return slices.Clone(s.rules)
}

// Check returns every finding in text screened as where, at most one per
// rule (its first match), in rule order.
func (s *Screen) Check(where Where, text string) []Finding {
	if s == nil {
		return nil
	}
	var out []Finding
	if max := s.maxBytes[where]; max > 0 && len(text) > max {
		out = append(out, Finding{Rule: "max_" + string(where) + "_bytes", Category: "size", Action: Block,
			Evidence: fmt.Sprintf("%d bytes, at most %d", len(text), max), Offset: max})
	}
	// Characters that do not show (zero-width, bidi controls, soft
	// hyphens) are taken out first: "sk-ant-…" with a zero-width space
	// inside is still the key. Offsets are into the text without them.
	text = stripInvisible(text)
	var encoded []decodedRun
	for i := range s.rules {
		r := &s.rules[i]
		if !r.applies(where) {
			continue
		}
		loc := r.Pattern.FindStringIndex(text)
		if loc == nil {
			if r.Category != "secret" {
				continue
			}
			// A credential may come base64-encoded: each long base64
			// run is decoded (once per text) and searched too.
			if encoded == nil {
				encoded = decodeRuns(text)
			}
			for _, d := range encoded {
				if m := r.Pattern.FindString(d.text); m != "" {
					out = append(out, Finding{Rule: r.Name, Category: r.Category, Action: r.Action, Evidence: "base64 of " + mask(m), Offset: d.at})
					break
				}
			}
			continue
		}
		ev := text[loc[0]:loc[1]]
		if r.Category == "secret" {
			ev = mask(ev)
		} else {
			ev = maskSecrets(clipRunes(ev, 80))
		}
		out = append(out, Finding{Rule: r.Name, Category: r.Category, Action: r.Action, Evidence: ev, Offset: loc[0]})
	}
	return out
}

// Refuse returns every finding of text screened as where, for the record,
// and the first blocking one as a *Refusal.
func (s *Screen) Refuse(where Where, text string) ([]Finding, error) {
	fs := s.Check(where, text)
	for _, f := range fs {
		if f.Action == Block {
			return fs, &Refusal{Where: where, Finding: f}
		}
	}
	return fs, nil
}

// Held returns the first finding in text screened as where whose rule
// holds it for a person, nil when none does.
func (s *Screen) Held(where Where, text string) *Finding {
	for _, f := range s.Check(where, text) {
		if f.Action == Hold {
			return &f
		}
	}
	return nil
}

// stripInvisible removes the characters that change how text displays
// without being seen: format characters (zero-width spaces and joiners,
// bidi marks, overrides and isolates, the byte-order mark, soft hyphens).
func stripInvisible(s string) string {
	if !strings.ContainsFunc(s, invisible) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, s)
}

func invisible(r rune) bool {
	return r >= 0x80 && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r))
}

// decodedRun is a base64 run of a text, decoded.
type decodedRun struct {
	at   int // its offset in the text
	text string
}

// base64Run is a run long enough to hold a credential once decoded (the
// shortest the detectors know is 20 characters: 28 in base64), line
// breaks inside it included (base64 and MIME wrap at 76 columns).
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/_-][A-Za-z0-9+/_\-\r\n]{27,}={0,2}`)

// decodeRuns decodes every base64 run of text (standard or URL alphabet,
// padded or not, wrapped or not), from each of the four places its
// groups may start (a character glued in front shifts them), so that a
// credential anywhere in it is found. The work is linear in the text,
// which the screen's size bounds bound.
func decodeRuns(text string) []decodedRun {
	out := []decodedRun{}
	for _, loc := range base64Run.FindAllStringIndex(text, -1) {
		run := strings.TrimRight(text[loc[0]:loc[1]], "=\r\n")
		run = strings.NewReplacer("\r", "", "\n", "").Replace(run)
		for k := 0; k < 4 && len(run)-k >= 28; k++ {
			part := run[k:]
			part = part[:len(part)/4*4]
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(part); err == nil {
					out = append(out, decodedRun{at: loc[0], text: string(b)})
					break
				}
			}
		}
	}
	return out
}

// urlPassword is the password of a URL's userinfo (scheme://user:PASS@).
var urlPassword = regexp.MustCompile(`(://[^/\s:@]*:)([^@\s/]+)@`)

// maskSecrets masks what evidence holds of a credential: a detector's
// shape, or a URL's password. A rule that is not about credentials may
// still match text holding one, and its evidence is kept and shown.
func maskSecrets(ev string) string {
	for _, d := range secretDetectors {
		ev = d.re.ReplaceAllStringFunc(ev, mask)
	}
	return urlPassword.ReplaceAllString(ev, "${1}•••@")
}

// clip cuts s to at most n bytes, at a rune boundary, marking the cut.
func clipRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// mask keeps a credential's first four characters, enough to tell which
// kind it is, and hides the rest.
func mask(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		if i := strings.Index(s, "KEY-----"); i > 0 {
			return s[:i+8] + "…"
		}
	}
	r := []rune(s)
	if len(r) <= 4 {
		return strings.Repeat("•", len(r))
	}
	return string(r[:4]) + strings.Repeat("•", min(len(r)-4, 12))
}
