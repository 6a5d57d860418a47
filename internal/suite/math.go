package suite

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hive-swarm/hive/internal/verify"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// A MathProblem is a word problem whose answer is one number.
type MathProblem struct {
	ID       string // "gsm8k/<line index>", e.g. "gsm8k/0"
	Question string
	Solution string // the reference reasoning, ending in "#### <gold>"
	Gold     string // the gold number, normalised (see [verify.FinalNumber])
}

// Correct reports whether answer's final number equals the gold answer.
func (p *MathProblem) Correct(answer string) bool { return Correct(answer, p.Gold) }

// Math is a set of word problems with the answers models gave.
type Math struct {
	Name       string
	Problems   []*MathProblem // in file order
	byID       map[string]*MathProblem
	byQuestion map[string]*MathProblem
	answers    map[string]map[string][]string // model → id → answers
	labels     map[string]map[string]bool     // model → id → upstream is_correct
}

// Problem returns the problem with id, or nil.
func (m *Math) Problem(id string) *MathProblem { return m.byID[id] }

// Models returns the names of the models with recorded answers, sorted.
func (m *Math) Models() []string { return models(m.answers) }

// Answers returns model's answers by problem id (one per problem), or nil
// for an unknown model. The map is shared: do not modify it.
func (m *Math) Answers(model string) map[string][]string { return m.answers[model] }

// UpstreamLabel returns whether the upstream file marked model's answer to
// problem id correct; ok is false when it has no label. Prefer grading
// with [Correct]: labels are kept to compare with.
func (m *Math) UpstreamLabel(model, id string) (correct, ok bool) {
	correct, ok = m.labels[model][id]
	return correct, ok
}

// GSM8K files and model names. The four GPT-3 systems of the OpenAI
// grade-school-math release are named gpt3-<size> (fine-tuned, one sample)
// and gpt3-<size>-verifier (best of 100 samples by a trained verifier).
const (
	gsmTestFile   = "test.jsonl"
	gsmGPT3File   = "gpt3-model-solutions.jsonl"
	gsmRouteFile  = "routellm-mixtral-gpt4-responses.csv"
	routeRespSufx = "_response"
)

// gpt3Models names the systems of gpt3-model-solutions.jsonl, in the
// order of readGPT3's fields.
var gpt3Models = []struct{ key, name string }{
	{"6b_finetuning", "gpt3-6b"},
	{"6b_verification", "gpt3-6b-verifier"},
	{"175b_finetuning", "gpt3-175b"},
	{"175b_verification", "gpt3-175b-verifier"},
}

// routeModelNames renames the RouteLLM CSV's model columns.
var routeModelNames = map[string]string{
	"mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b-instruct",
}

// LoadGSM8K loads the GSM8K test set and the recorded answers from dir,
// laid out like the gsm8k directory of the data README: test.jsonl (the
// questions; gold after "####"), and optionally
// gpt3-model-solutions.jsonl (models gpt3-6b, gpt3-6b-verifier, gpt3-175b,
// gpt3-175b-verifier) and routellm-mixtral-gpt4-responses.csv (models
// mixtral-8x7b-instruct and gpt-4-1106-preview). Answers are matched to
// questions by question text.
func LoadGSM8K(dir string) (*Math, error) {
	m := &Math{
		Name:       filepath.Base(dir),
		byID:       make(map[string]*MathProblem),
		byQuestion: make(map[string]*MathProblem),
		answers:    make(map[string]map[string][]string),
		labels:     make(map[string]map[string]bool),
	}
	err := readLines(filepath.Join(dir, gsmTestFile), func(line []byte) error {
		var r struct{ Question, Answer string }
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		gold, ok := verify.FinalNumber(r.Answer)
		if !ok {
			return fmt.Errorf("no gold number in %q", r.Answer)
		}
		p := &MathProblem{ID: fmt.Sprintf("gsm8k/%d", len(m.Problems)), Question: r.Question, Solution: r.Answer, Gold: gold}
		m.Problems = append(m.Problems, p)
		m.byID[p.ID] = p
		m.byQuestion[strings.TrimSpace(p.Question)] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load gsm8k %s: %w", dir, err)
	}
	var gpt3, route modelAnswers
	var g errgroup.Group
	g.Go(func() (err error) { gpt3, err = m.readGPT3(filepath.Join(dir, gsmGPT3File)); return err })
	g.Go(func() (err error) { route, err = m.readRoute(filepath.Join(dir, gsmRouteFile)); return err })
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load gsm8k %s: %w", dir, err)
	}
	for _, ma := range []modelAnswers{gpt3, route} {
		for name, a := range ma.answers {
			m.answers[name] = a
			m.labels[name] = ma.labels[name]
		}
	}
	return m, nil
}

type modelAnswers struct {
	answers map[string]map[string][]string
	labels  map[string]map[string]bool
}

func newModelAnswers() modelAnswers {
	return modelAnswers{answers: make(map[string]map[string][]string), labels: make(map[string]map[string]bool)}
}

func (ma modelAnswers) add(model, id, answer string, correct bool) {
	if ma.answers[model] == nil {
		ma.answers[model] = make(map[string][]string)
		ma.labels[model] = make(map[string]bool)
	}
	ma.answers[model][id] = append(ma.answers[model][id], answer)
	ma.labels[model][id] = correct
}

// problemFor finds the problem a recorded answer belongs to: by question
// text when the file carries it, else by position.
func (m *Math) problemFor(question string, index int) (*MathProblem, error) {
	if q := strings.TrimSpace(question); q != "" {
		if p := m.byQuestion[q]; p != nil {
			return p, nil
		}
		return nil, fmt.Errorf("question %.60q is not in %s", q, gsmTestFile)
	}
	if index < len(m.Problems) {
		return m.Problems[index], nil
	}
	return nil, fmt.Errorf("row %d has no question and is past the last problem", index+1)
}

func (m *Math) readGPT3(path string) (modelAnswers, error) {
	ma := newModelAnswers()
	type sol struct {
		IsCorrect bool    `json:"is_correct"`
		Solution  *string `json:"solution"`
	}
	var r struct {
		Question string `json:"question"`
		M6       *sol   `json:"6b_finetuning"`
		M6V      *sol   `json:"6b_verification"`
		M175     *sol   `json:"175b_finetuning"`
		M175V    *sol   `json:"175b_verification"`
	}
	i := 0
	err := readLines(path, func(line []byte) error {
		r.M6, r.M6V, r.M175, r.M175V = nil, nil, nil, nil
		if err := json.Unmarshal(line, &r); err != nil {
			return err
		}
		p, err := m.problemFor(r.Question, i)
		i++
		if err != nil {
			return err
		}
		for k, s := range []*sol{r.M6, r.M6V, r.M175, r.M175V} {
			if s != nil && s.Solution != nil {
				ma.add(gpt3Models[k].name, p.ID, *s.Solution, s.IsCorrect)
			}
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return ma, nil
	}
	return ma, err
}

func (m *Math) readRoute(path string) (modelAnswers, error) {
	ma := newModelAnswers()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return ma, nil
	}
	if err != nil {
		return ma, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return ma, fmt.Errorf("%s: header: %w", gsmRouteFile, err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	type model struct {
		name            string
		label, response int
	}
	var ms []model
	for i, h := range header {
		j, ok := col[h+routeRespSufx]
		if !ok {
			continue
		}
		name := routeModelNames[h]
		if name == "" {
			name = strings.ToLower(h[strings.LastIndex(h, "/")+1:])
		}
		ms = append(ms, model{name, i, j})
	}
	if len(ms) == 0 {
		return ma, fmt.Errorf("%s: no <model>, <model>%s column pairs", gsmRouteFile, routeRespSufx)
	}
	qcol, hasQ := col["prompt"]
	for row := 0; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ma, fmt.Errorf("%s: %w", gsmRouteFile, err)
		}
		q := ""
		if hasQ {
			q = rec[qcol]
		}
		p, err := m.problemFor(q, row)
		if err != nil {
			return ma, fmt.Errorf("%s row %d: %w", gsmRouteFile, row+2, err)
		}
		for _, mod := range ms {
			ok, _ := strconv.ParseBool(rec[mod.label])
			ma.add(mod.name, p.ID, rec[mod.response], ok)
		}
	}
	return ma, nil
}
