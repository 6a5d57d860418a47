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

// CodeAnswers returns model's answers to the code set c, one record per
// problem with its task id and prompt, each answer the full program in a
// ```python fence, billed for what the model produced of it
// ([suite.Code.Outputs]).
func CodeAnswers(c *suite.Code, model string) ([]Record, error) {
	byID := c.Answers(model)
	if byID == nil {
		return nil, fmt.Errorf("replay: %s has no answers by model %q (have %s)", c.Name, model, strings.Join(c.Models(), ", "))
	}
	outs := c.Outputs(model)
	recs := make([]Record, 0, len(byID))
	for _, p := range c.Problems {
		programs := byID[p.ID]
		if len(programs) == 0 {
			continue
		}
		r := Record{ID: p.ID, Question: p.Prompt, Answers: make([]Answer, len(programs))}
		for i, prog := range programs {
			r.Answers[i] = Answer{Text: Fence(prog), Output: outs[p.ID][i]}
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// MathAnswers returns model's answers to the math set m, one record per
// problem with its id and question, each answer the recorded solution
// text.
func MathAnswers(m *suite.Math, model string) ([]Record, error) {
	byID := m.Answers(model)
	if byID == nil {
		return nil, fmt.Errorf("replay: %s has no answers by model %q (have %s)", m.Name, model, strings.Join(m.Models(), ", "))
	}
	recs := make([]Record, 0, len(byID))
	for _, p := range m.Problems {
		if answers := byID[p.ID]; len(answers) > 0 {
			r := Record{ID: p.ID, Question: p.Question, Answers: make([]Answer, len(answers))}
			for i, a := range answers {
				r.Answers[i] = Answer{Text: a, Output: a}
			}
			recs = append(recs, r)
		}
	}
	return recs, nil
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
