package replay

import (
	"fmt"
	"strings"

	"github.com/hive-swarm/hive/internal/suite"
)

// Fence puts a program in a ```python fence, the form a chat model's code
// answer takes; consumers extract the code from the fence.
func Fence(program string) string {
	return "```python\n" + strings.TrimRight(program, "\n") + "\n```"
}

// CodeAnswers returns model's answers to the code set c, keyed by each
// problem's prompt, each a full program in a ```python fence.
func CodeAnswers(c *suite.Code, model string) (Answers, error) {
	byID := c.Answers(model)
	if byID == nil {
		return nil, fmt.Errorf("replay: %s has no answers by model %q (have %s)", c.Name, model, strings.Join(c.Models(), ", "))
	}
	a := make(Answers, len(byID))
	for _, p := range c.Problems {
		programs := byID[p.ID]
		if len(programs) == 0 {
			continue
		}
		fenced := make([]string, len(programs))
		for i, prog := range programs {
			fenced[i] = Fence(prog)
		}
		a[p.Prompt] = fenced
	}
	return a, nil
}

// MathAnswers returns model's answers to the math set m, keyed by each
// problem's question, as the recorded solution text.
func MathAnswers(m *suite.Math, model string) (Answers, error) {
	byID := m.Answers(model)
	if byID == nil {
		return nil, fmt.Errorf("replay: %s has no answers by model %q (have %s)", m.Name, model, strings.Join(m.Models(), ", "))
	}
	a := make(Answers, len(byID))
	for _, p := range m.Problems {
		if answers := byID[p.ID]; len(answers) > 0 {
			a[p.Question] = answers
		}
	}
	return a, nil
}

// NewCode returns a model replaying model's answers to the code set c.
func NewCode(c *suite.Code, model string, opts Options) (*Model, error) {
	a, err := CodeAnswers(c, model)
	if err != nil {
		return nil, err
	}
	return New(model, a, opts), nil
}

// NewMath returns a model replaying model's answers to the math set m.
func NewMath(m *suite.Math, model string, opts Options) (*Model, error) {
	a, err := MathAnswers(m, model)
	if err != nil {
		return nil, err
	}
	return New(model, a, opts), nil
}
