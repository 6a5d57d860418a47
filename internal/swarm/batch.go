package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/provider"
)

// Batch calls. A run whose urgency is batch sends its workers' calls
// through the providers' batch APIs, at half price and answered within 24
// hours: the calls to one model that arrive within BatchWindow go as one
// batch. Each call's place in a batch (the batch's id and the call's
// custom id) is journaled as soon as the batch is accepted, so a resumed
// run asks the provider for that batch's results and never submits the
// call again. A batch is polled by one of the calls waiting on it at a
// time, ever less often while it runs. An item that expires (the
// provider did not get to it in time) or fails in a way a retry can fix
// (overloaded, a server error) is sent in a new batch once, then fails as
// any call does.

const (
	defaultBatchWindow = 2 * time.Second
	defaultBatchPoll   = 10 * time.Second
	maxBatchPoll       = time.Minute
	// maxBatchItems bounds one batch, well under both providers' limits
	// (100,000 requests at Anthropic, 50,000 at OpenAI).
	maxBatchItems = 10_000
	// batchAttempts is how often an item is submitted before its expiry
	// is its failure.
	batchAttempts = 2
)

// batchPlace is what a run journals of a call in a batch.
type batchPlace struct {
	Batch  string `json:"batch"`
	Custom string `json:"custom_id"`
}

// batchKey is the journal key of attempt n (0-based) of call key's place.
func batchKey(key string, n int) string { return fmt.Sprintf("batch/%s/%d", key, n) }

// customID is the custom id of attempt n of call key of run runID: the
// providers take ^[a-zA-Z0-9_-]{1,64}$.
func customID(runID, key string, n int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", runID, key, n)))
	return "h" + hex.EncodeToString(h[:20])
}

// batches is a run's batch calls in flight.
type batches struct {
	r *run

	mu     sync.Mutex
	queues map[string]*batchQueue // by model name; guarded by mu
	polls  map[string]*batchPoll  // by batch id; guarded by mu
}

// A batchQueue collects the calls to one model that go in the next batch.
type batchQueue struct {
	items []*batchItem
	full  chan struct{} // closed when the queue reaches maxBatchItems
}

type batchItem struct {
	key    string
	custom string
	req    *llm.Request
	// placed is closed once the batch is submitted: place or err is set.
	placed chan struct{}
	place  batchPlace
	err    error
}

// A batchPoll is one submitted batch that calls wait on.
type batchPoll struct {
	b       llm.Batcher
	polling bool          // a waiter is asking the provider now
	change  chan struct{} // closed and replaced after each poll
	next    time.Time     // when the next poll is due
	every   time.Duration
	ended   *llm.BatchStatus
}

func (r *run) batchesOf() *batches {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batch == nil {
		r.batch = &batches{r: r, queues: map[string]*batchQueue{}, polls: map[string]*batchPoll{}}
	}
	return r.batch
}

// do sends req, the model call of journal key key, to m as part of a
// batch, and returns its answer.
func (bs *batches) do(ctx context.Context, m *provider.Model, key string, req *llm.Request) (*llm.Response, error) {
	var err error
	for n := 0; n < batchAttempts; n++ {
		var place batchPlace
		data, ok, jerr := bs.r.journaled(batchKey(key, n))
		if jerr != nil {
			return nil, jerr
		}
		if ok {
			if err := json.Unmarshal(data, &place); err != nil {
				return nil, fmt.Errorf("read journal %s: %w", batchKey(key, n), err)
			}
		} else if place, err = bs.submit(ctx, m, key, n, req); err != nil {
			return nil, err
		}
		var resp *llm.Response
		resp, err = bs.wait(ctx, m.Batch, place)
		if err == nil || !llm.KindOf(err).Retryable() {
			return resp, err
		}
		bs.r.e.log.Info("a batch call expired or failed in a way a retry can fix; sending it in a new batch", "run", bs.r.id, "call", key, "batch", place.Batch, "err", err)
	}
	return nil, err
}

// submit queues the call for the model's next batch and returns its
// place once the batch is accepted. The first call of a batch waits
// BatchWindow for the others, then submits them all.
func (bs *batches) submit(ctx context.Context, m *provider.Model, key string, n int, req *llm.Request) (batchPlace, error) {
	it := &batchItem{key: key, custom: customID(bs.r.id, key, n), req: req, placed: make(chan struct{})}
	bs.mu.Lock()
	q := bs.queues[m.Name]
	first := q == nil
	if first {
		q = &batchQueue{full: make(chan struct{})}
		bs.queues[m.Name] = q
	}
	q.items = append(q.items, it)
	if len(q.items) == maxBatchItems {
		close(q.full)
		delete(bs.queues, m.Name) // the next call starts a new batch
	}
	bs.mu.Unlock()
	if first {
		bs.send(m, q, n)
	}
	select {
	case <-it.placed:
		return it.place, it.err
	case <-ctx.Done():
		return batchPlace{}, context.Cause(ctx)
	}
}

// send waits out the window (or until q is full), then submits q's items
// as one batch and journals each item's place. It runs on the first
// item's goroutine, under the run's context rather than that item's: the
// others depend on it.
func (bs *batches) send(m *provider.Model, q *batchQueue, attempt int) {
	ctx := bs.r.workCtx
	window := bs.r.e.opts.BatchWindow
	if window <= 0 {
		window = defaultBatchWindow
	}
	t := time.NewTimer(window)
	select {
	case <-t.C:
	case <-q.full:
		t.Stop()
	case <-ctx.Done():
		t.Stop()
	}
	bs.mu.Lock()
	if bs.queues[m.Name] == q {
		delete(bs.queues, m.Name)
	}
	items := q.items
	bs.mu.Unlock()

	reqs := make([]llm.BatchRequest, len(items))
	for i, it := range items {
		reqs[i] = llm.BatchRequest{CustomID: it.custom, Request: it.req}
	}
	id, err := submitBatch(ctx, m, reqs)
	for _, it := range items {
		if err == nil {
			it.place = batchPlace{Batch: id, Custom: it.custom}
			data, _ := json.Marshal(it.place)
			if jerr := bs.r.e.store.PutStep(ctx, bs.r.id, batchKey(it.key, attempt), data); jerr != nil {
				it.err = fmt.Errorf("journal batch %s: %w", id, jerr)
			}
		} else {
			it.err = err
		}
		close(it.placed)
	}
	if err == nil {
		bs.r.e.log.Info("batch sent", "run", bs.r.id, "model", m.Name, "batch", id, "calls", len(items))
	}
}

// submitBatch submits reqs through the model's limiter, which paces it
// and retries what a retry can fix (429s with their retry-after,
// overloads, server errors) as it does every call.
func submitBatch(ctx context.Context, m *provider.Model, reqs []llm.BatchRequest) (string, error) {
	var id string
	err := m.Limiter.Do(ctx, limit.Worker, 0, func(ctx context.Context) (int64, error) {
		var err error
		id, err = m.Batch.SubmitBatch(ctx, reqs)
		return 0, err
	})
	if err != nil {
		return "", fmt.Errorf("send a batch to %s: %w", m.Name, err)
	}
	return id, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait returns the result of the call at place once its batch has ended.
func (bs *batches) wait(ctx context.Context, b llm.Batcher, place batchPlace) (*llm.Response, error) {
	bs.mu.Lock()
	p := bs.polls[place.Batch]
	if p == nil {
		every := bs.r.e.opts.BatchPoll
		if every <= 0 {
			every = defaultBatchPoll
		}
		p = &batchPoll{b: b, change: make(chan struct{}), every: every, next: time.Now().Add(every)}
		bs.polls[place.Batch] = p
	}
	bs.mu.Unlock()
	for {
		bs.mu.Lock()
		if st := p.ended; st != nil {
			bs.mu.Unlock()
			res, ok := st.Results[place.Custom]
			if !ok {
				return nil, &llm.Error{Kind: llm.KindTransient, Message: fmt.Sprintf("batch %s ended without a result for call %s", place.Batch, place.Custom)}
			}
			if res.Err != nil {
				return nil, res.Err
			}
			return res.Response, nil
		}
		if p.polling {
			ch := p.change
			bs.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		p.polling = true
		due := time.Until(p.next)
		bs.mu.Unlock()
		// This call polls for every call waiting on the batch; if its own
		// context ends, it hands the polling to another.
		err := sleep(ctx, due)
		var st *llm.BatchStatus
		if err == nil {
			st, err = p.b.PollBatch(ctx, place.Batch)
		}
		bs.mu.Lock()
		p.polling = false
		if err == nil && st.Ended {
			p.ended = st
		}
		p.next = time.Now().Add(p.every)
		p.every = min(2*p.every, maxBatchPoll)
		close(p.change)
		p.change = make(chan struct{})
		bs.mu.Unlock()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if err != nil && !llm.KindOf(err).Retryable() && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("poll batch %s: %w", place.Batch, err)
		}
	}
}
