// Package replay is an [llm.Model] that answers benchmark questions with
// the answers real models gave to them, so that Hive's verification,
// voting, repair and escalation run offline against real model behaviour:
// real right answers, real wrong ones, real costs.
//
// A [Model] is built from [Record]s, what one named model answered to each
// question ([CodeAnswers] and [MathAnswers] build them from a loaded
// suite). A request is matched by what it contains, never by the order of
// calls. When a record has an id (a suite's task id, "HumanEval/0") and
// the request names it, the id decides, and the request must contain that
// record's question too. Otherwise the question decides, wherever it is
// wrapped: its words must appear whole, in order, in the system prompt or
// one message (case, whitespace and line breaks are ignored; punctuation
// is not). Two records whose questions differ only in whitespace are told
// apart by the one the request contains byte for byte. A request that
// contains no recorded question, or two unrelated ones, or that cannot be
// told apart, fails with an [*llm.Error] of [llm.KindBadRequest]: replay
// never invents an answer, nor serves one question's answer for another.
//
// A model with several recorded answers per question (CodeGen-16B's 100
// samples) answers each call for a question with the next sample it has
// not yet given, in an order fixed by [Options.Seed] (a permutation per
// question); once all are given it starts over in the same order.
//
// Usage is counted with the cl100k_base tokenizer (tiktoken, loaded from
// embedded ranks, no network) on the request's tools, system prompt and
// messages (plus OpenAI's chat overhead of 3 tokens per message and 3 to
// prime the reply) and on what the model produced ([Answer.Output]: a
// recorded program without the prompt the recording or the suite put in
// front of it, which is a copy of the input, not output). That is exact for GPT-3.5/GPT-4-era
// OpenAI models and an approximation for the others (CodeLlama, StarCoder,
// CodeGen, Mixtral have their own tokenizers, typically within ±15% on
// English and code). Cost is usage times the model's list price, which
// package price computes; replay reports usage only, never cost.
//
// Code answers are returned as the recorded full program inside one
// ```python fence (see [Fence]), the way chat models answer; math answers
// as the recorded solution text, unchanged.
package replay

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
)

// A Record is what a model answered to one question.
type Record struct {
	// ID names the question in its suite ("HumanEval/0"); empty when it
	// has none. Ids of one model's records must differ.
	ID       string
	Question string
	Answers  []Answer
}

// An Answer is one recorded answer.
type Answer struct {
	// Text is what replay answers with.
	Text string
	// Output is the part of Text the model itself produced, on which its
	// output tokens are counted: all of Text for an answer recorded as
	// given, the completion alone for a program that the recording or the
	// suite assembled as prompt + completion, nothing for an empty answer
	// shown as its prompt.
	Output string
}

// Options are a replay model's optional knobs. The zero value works.
type Options struct {
	// Seed fixes the order in which a model with several answers per
	// question gives them. Models with one answer ignore it.
	Seed uint64
	// Latency delays each answer, to make a replay feel like a real model
	// in demos; a stream spreads it over its deltas. Zero answers at once.
	Latency time.Duration
}

// provider names replay in errors.
const provider = "replay"

// streamDeltas is how many text deltas Stream delivers an answer in.
const streamDeltas = 4

// Model answers requests with one named model's recorded answers. It is
// safe for concurrent use.
type Model struct {
	name      string
	opts      Options
	questions []string
	answers   [][]Answer
	ix        *index // over questions
	recordIDs []string
	ids       *index // over recordIDs; nil when no record has an id
	// tokens caches the token count of answer j of question q at
	// tokens[offset[q]+j], stored plus one (zero: not counted yet).
	offset []int
	tokens []atomic.Int64
	calls  atomic.Uint64

	mu sync.Mutex
	// served counts the answers given per question; guarded by mu.
	served map[int32]int
	// order is the seeded order of each multi-answer question's samples;
	// guarded by mu.
	order map[int32][]int32
}

// New returns a model named name that answers with records. Records with
// no answer are dropped.
func New(name string, records []Record, opts Options) *Model {
	m := &Model{name: name, opts: opts, served: make(map[int32]int), order: make(map[int32][]int32)}
	recs := make([]Record, 0, len(records))
	for _, r := range records {
		if len(r.Answers) > 0 {
			recs = append(recs, r)
		}
	}
	// Sorted, so that everything derived from positions is reproducible.
	slices.SortStableFunc(recs, func(a, b Record) int {
		return cmp.Or(strings.Compare(a.Question, b.Question), strings.Compare(a.ID, b.ID))
	})
	m.questions = make([]string, len(recs))
	m.answers = make([][]Answer, len(recs))
	m.offset = make([]int, len(recs))
	m.recordIDs = make([]string, len(recs))
	ids := m.recordIDs
	n, haveIDs := 0, false
	for i, r := range recs {
		m.questions[i], m.answers[i], ids[i] = r.Question, r.Answers, r.ID
		m.offset[i] = n
		n += len(r.Answers)
		haveIDs = haveIDs || r.ID != ""
	}
	m.tokens = make([]atomic.Int64, n)
	m.ix = newIndex(m.questions)
	if haveIDs {
		m.ids = newIndex(ids)
	}
	return m
}

// Reset makes m give each question's samples from the first again, as a
// fresh model would: runs that should see the same answers (strategies
// compared on one set) start from the same place.
func (m *Model) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.served)
}

// Name returns the name of the model whose answers m replays.
func (m *Model) Name() string { return m.name }

// Generate answers req with the recorded answer to the question it
// contains.
func (m *Model) Generate(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	resp, err := m.answer(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, m.opts.Latency); err != nil {
		return nil, err
	}
	return resp, nil
}

// Stream answers like Generate, delivering the text in a few deltas.
func (m *Model) Stream(ctx context.Context, req *llm.Request, fn func(llm.Delta)) (*llm.Response, error) {
	resp, err := m.answer(ctx, req)
	if err != nil {
		return nil, err
	}
	chunks := split(resp.Text(), streamDeltas)
	for _, c := range chunks {
		if err := sleep(ctx, m.opts.Latency/time.Duration(len(chunks))); err != nil {
			return nil, err
		}
		if fn != nil {
			fn(llm.Delta{Text: c})
		}
	}
	return resp, nil
}

func (m *Model) answer(ctx context.Context, req *llm.Request) (*llm.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, &llm.Error{Kind: llm.KindCancelled, Provider: provider, Err: err}
	}
	tok, err := newCounterShared()
	if err != nil {
		return nil, &llm.Error{Kind: llm.KindUnknown, Provider: provider, Err: err}
	}
	q, err := m.match(req)
	if err != nil {
		return nil, err
	}
	j := m.next(q)
	a := m.answers[q][j]
	text := a.Text
	out := m.answerTokens(tok, q, j)
	stop := llm.StopEnd
	if req.MaxTokens > 0 && out > int64(req.MaxTokens) {
		// Cut the produced part at the limit, keeping what came before it.
		keep := max(int64(len(tok.enc.EncodeOrdinary(text)))-out, 0) + int64(req.MaxTokens)
		text, out, stop = tok.truncate(text, int(keep)), int64(req.MaxTokens), llm.StopMaxTokens
	}
	return &llm.Response{
		ID:         fmt.Sprintf("replay_%d", m.calls.Add(1)),
		Model:      m.name,
		Parts:      []llm.Part{llm.Text{Text: text}},
		StopReason: stop,
		Usage:      llm.Usage{InputTokens: tok.prompt(req), OutputTokens: out},
	}, nil
}

// wordsPool recycles the word buffers of request texts.
var wordsPool = sync.Pool{New: func() any { s := make([]uint64, 0, 1024); return &s }}

// match returns the question req contains, or the one it names by id.
func (m *Model) match(req *llm.Request) (int32, error) {
	bp := wordsPool.Get().(*[]uint64)
	defer wordsPool.Put(bp)
	var found, named []int32
	var texts []string
	scan := func(s string) {
		if s != "" {
			texts = append(texts, s)
			*bp = appendWords((*bp)[:0], s)
			found = m.ix.find(found, *bp)
			if m.ids != nil {
				named = m.ids.find(named, *bp)
			}
		}
	}
	scan(req.System)
	for _, msg := range req.Messages {
		for _, p := range msg.Parts {
			switch p := p.(type) {
			case llm.Text:
				scan(p.Text)
			case llm.ToolResult:
				scan(p.Content)
			}
		}
	}
	if len(named) > 1 {
		return 0, m.badRequest("the request names %d different recorded questions by id; replay answers one", len(named))
	}
	if len(named) == 1 {
		q := named[0]
		if !slices.Contains(found, q) {
			return 0, m.badRequest("the request names %s but does not contain its recorded question", m.idOf(q))
		}
		return q, nil
	}
	if len(found) == 0 {
		return 0, m.badRequest("no recorded answer matching the request (no recorded question appears in it)")
	}
	// A question may contain another; the longest one found must contain
	// every other, or the request is ambiguous.
	best := found[0]
	for _, q := range found[1:] {
		if len(m.ix.words[q]) > len(m.ix.words[best]) {
			best = q
		}
	}
	var same []int32 // questions with best's words, differing in whitespace
	for _, q := range found {
		switch {
		case slices.Equal(m.ix.words[q], m.ix.words[best]):
			same = append(same, q)
		case !m.ix.contains(best, q):
			return 0, m.badRequest("the request contains %d different recorded questions; replay answers one", len(found))
		}
	}
	if len(same) == 1 {
		return best, nil
	}
	// Questions that differ only in whitespace: the one the request holds
	// byte for byte, if exactly one is.
	var exact []int32
	for _, q := range same {
		if slices.ContainsFunc(texts, func(t string) bool { return strings.Contains(t, m.questions[q]) }) {
			exact = append(exact, q)
		}
	}
	if len(exact) == 1 {
		return exact[0], nil
	}
	return 0, m.badRequest("the request matches %d recorded questions that differ only in whitespace, and cannot be told apart: name the question's id in the request", len(same))
}

func (m *Model) badRequest(format string, args ...any) error {
	return &llm.Error{Kind: llm.KindBadRequest, Provider: provider,
		Message: fmt.Sprintf("model %s: ", m.name) + fmt.Sprintf(format, args...)}
}

// idOf returns question q's id as written in its record.
func (m *Model) idOf(q int32) string { return m.recordIDs[q] }

// next returns which answer to question q to give now.
func (m *Model) next(q int32) int {
	n := len(m.answers[q])
	if n == 1 {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	order := m.order[q]
	if order == nil {
		order = m.permutationLocked(q)
		m.order[q] = order
	}
	k := m.served[q]
	m.served[q] = k + 1
	return int(order[k%n])
}

// permutationLocked returns the seeded order of question q's answers; it
// depends on the seed and the question's text only.
func (m *Model) permutationLocked(q int32) []int32 {
	h := fnv.New64a()
	h.Write([]byte(m.questions[q]))
	r := rand.New(rand.NewPCG(m.opts.Seed, h.Sum64()))
	order := make([]int32, len(m.answers[q]))
	for i := range order {
		order[i] = int32(i)
	}
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// answerTokens returns the token count of answer j of question q,
// counting it on first use.
func (m *Model) answerTokens(tok *counter, q int32, j int) int64 {
	slot := &m.tokens[m.offset[q]+j]
	if v := slot.Load(); v > 0 {
		return v - 1
	}
	n := int64(len(tok.enc.EncodeOrdinary(m.answers[q][j].Output)))
	slot.Store(n + 1)
	return n
}

// sharedCounter is the process-wide prompt token counter: its cache is
// useful across models, since one conversation often goes to several.
var sharedCounter = sync.OnceValues(newCounter)

func newCounterShared() (*counter, error) { return sharedCounter() }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return &llm.Error{Kind: llm.KindCancelled, Provider: provider, Err: ctx.Err()}
	}
}

// split cuts s into at most n pieces of about equal size, on rune
// boundaries.
func split(s string, n int) []string {
	if len(s) == 0 {
		return []string{""}
	}
	size := (len(s) + n - 1) / n
	var out []string
	for len(s) > 0 {
		i := min(size, len(s))
		for i < len(s) && !utf8RuneStart(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
