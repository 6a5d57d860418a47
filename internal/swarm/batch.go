package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	// maxBatchBytes bounds one batch's prompt bytes, under both
	// providers' limits with room for the requests' JSON (256 MB a batch
	// at Anthropic, 200 MB an input file at OpenAI).
	maxBatchBytes = 128 << 20
	// batchAttempts is how often an item is submitted before its expiry
	// is its failure.
	batchAttempts = 2
	// defaultBatchDeadline is how long after it was sent a batch is
	// given up: both providers end a batch within 24 hours.
	defaultBatchDeadline = 25 * time.Hour
	// maxPollFails is how many polls in a row may fail (a results file
	// that does not parse, a server that errs) before the batch's calls
	// fail.
	maxPollFails = 5
	// batchCancelTimeout bounds a cancel request.
	batchCancelTimeout = 30 * time.Second
)

// batchPlace is what a run journals of a call in a batch.
type batchPlace struct {
	Batch  string `json:"batch"`
	Custom string `json:"custom_id"`
	// Sent is when the provider accepted the batch (Unix seconds).
	Sent int64 `json:"sent,omitempty"`
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
	// members are the custom ids of this run's calls in each batch, by
	// batch id: only their results are read. Guarded by mu.
	members map[string]map[string]bool
}

// A batchQueue collects the calls to one model that go in the next batch.
type batchQueue struct {
	items []*batchItem
	bytes int64         // the items' prompt bytes
	taken bool          // send has taken the items; guarded by batches.mu
	full  chan struct{} // closed when the queue reaches a batch's limits
}

type batchItem struct {
	key     string
	attempt int
	custom  string
	req     *llm.Request
	// gone is the caller's context's Done: a call whose caller has gone
	// before the batch is sent is left out of it.
	gone <-chan struct{}
	// placed is closed once the batch is submitted: place or err is set.
	placed chan struct{}
	place  batchPlace
	err    error
}

// A batchPoll is one submitted batch that calls wait on.
type batchPoll struct {
	id      string
	b       llm.Batcher
	waiters int           // calls of this run waiting on the batch
	polling bool          // a waiter is asking the provider now
	change  chan struct{} // closed and replaced after each poll
	next    time.Time     // when the next poll is due
	every   time.Duration
	fails   int // polls in a row that failed
	ended   *llm.BatchStatus
	// err, once set, fails every call waiting on the batch: Hive gave it
	// up (it did not end in time, or could not be read).
	err       error
	cancelled bool // a cancel has been sent
}

func (r *run) batchesOf() *batches {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batch == nil {
		r.batch = &batches{r: r, queues: map[string]*batchQueue{}, polls: map[string]*batchPoll{}, members: map[string]map[string]bool{}}
	}
	return r.batch
}

// do sends req, the model call of journal key key, to m as part of a
// batch, and returns its answer. placed reports whether the call's last
// attempt is in a batch the provider accepted: one the provider may run
// and bill even when do returns an error.
func (bs *batches) do(ctx context.Context, m *provider.Model, key string, req *llm.Request) (resp *llm.Response, placed bool, err error) {
	for n := 0; n < batchAttempts; n++ {
		var place batchPlace
		data, ok, jerr := bs.r.journaled(batchKey(key, n))
		if jerr != nil {
			return nil, false, jerr
		}
		if ok {
			if err := json.Unmarshal(data, &place); err != nil {
				return nil, false, fmt.Errorf("read journal %s: %w", batchKey(key, n), err)
			}
			bs.join(m.Batch, place)
		} else if place, err = bs.submit(ctx, m, key, n, req); err != nil {
			return nil, false, err
		}
		resp, err = bs.wait(ctx, place)
		if err == nil || !llm.KindOf(err).Retryable() {
			return resp, true, err
		}
		bs.r.e.log.Info("a batch call expired or failed in a way a retry can fix; sending it in a new batch", "run", bs.r.id, "call", key, "batch", place.Batch, "err", err)
	}
	return nil, false, err
}

// submit queues the call for the model's next batch and returns its
// place once the batch is accepted. The first call of a batch waits
// BatchWindow for the others, then submits them all. A call whose ctx
// ends before its batch is sent is taken out of it.
func (bs *batches) submit(ctx context.Context, m *provider.Model, key string, n int, req *llm.Request) (batchPlace, error) {
	it := &batchItem{key: key, attempt: n, custom: customID(bs.r.id, key, n), req: req, gone: ctx.Done(), placed: make(chan struct{})}
	size := requestBytes(req)
	bs.mu.Lock()
	q := bs.queues[m.Name]
	first := q == nil
	if first {
		q = &batchQueue{full: make(chan struct{})}
		bs.queues[m.Name] = q
	}
	q.items = append(q.items, it)
	q.bytes += size
	if len(q.items) == maxBatchItems || q.bytes >= maxBatchBytes {
		close(q.full)
		delete(bs.queues, m.Name) // the next call starts a new batch
	}
	bs.mu.Unlock()
	if first {
		bs.send(m, q)
	}
	select {
	case <-it.placed:
		return it.place, it.err
	case <-ctx.Done():
	}
	bs.mu.Lock()
	if !q.taken {
		q.items = slices.DeleteFunc(q.items, func(x *batchItem) bool { return x == it })
		q.bytes -= size
		bs.mu.Unlock()
		return batchPlace{}, context.Cause(ctx)
	}
	bs.mu.Unlock()
	// The batch is on its way with this call in it: its place is
	// needed to settle (and cancel) it.
	<-it.placed
	return it.place, it.err
}

// send waits out the window (or until q is full), then submits q's items
// as one batch and journals each item's place. It runs on the first
// item's goroutine, under the run's context rather than that item's: the
// others depend on it.
func (bs *batches) send(m *provider.Model, q *batchQueue) {
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
	q.taken = true
	var items []*batchItem
	for _, it := range q.items {
		select {
		case <-it.gone:
			it.err = errors.New("left out of its batch: the call was cancelled before the batch was sent")
			close(it.placed)
		default:
			items = append(items, it)
		}
	}
	bs.mu.Unlock()
	if len(items) == 0 {
		return
	}

	reqs := make([]llm.BatchRequest, len(items))
	for i, it := range items {
		reqs[i] = llm.BatchRequest{CustomID: it.custom, Request: it.req}
	}
	id, err := submitBatch(ctx, m, reqs)
	sent := time.Now().Unix()
	if err == nil {
		// The run's calls in the batch, waiting from now on.
		bs.mu.Lock()
		ids := make(map[string]bool, len(items))
		for _, it := range items {
			ids[it.custom] = true
		}
		bs.members[id] = ids
		bs.pollOf(m.Batch, id).waiters += len(items)
		bs.mu.Unlock()
	}
	for _, it := range items {
		if err == nil {
			it.place = batchPlace{Batch: id, Custom: it.custom, Sent: sent}
			data, _ := json.Marshal(it.place)
			if jerr := bs.r.e.store.PutStep(ctx, bs.r.id, batchKey(it.key, it.attempt), data); jerr != nil {
				it.err = fmt.Errorf("journal batch %s: %w", id, jerr)
				bs.leave(ctx, it.place, false)
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

// pollOf returns the poll of batch id, made on first use. bs.mu is held.
func (bs *batches) pollOf(b llm.Batcher, id string) *batchPoll {
	p := bs.polls[id]
	if p == nil {
		every := bs.r.e.opts.BatchPoll
		if every <= 0 {
			every = defaultBatchPoll
		}
		p = &batchPoll{id: id, b: b, change: make(chan struct{}), every: every, next: time.Now().Add(every)}
		bs.polls[id] = p
	}
	return p
}

// join counts a call of an earlier execution, journaled at place, among
// its batch's waiters. The batch's members are the places this run
// journaled in it.
func (bs *batches) join(b llm.Batcher, place batchPlace) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.pollOf(b, place.Batch).waiters++
	if bs.members[place.Batch] != nil {
		return
	}
	ids := map[string]bool{}
	for key, data := range bs.r.memo {
		var pl batchPlace
		if strings.HasPrefix(key, "batch/") && json.Unmarshal(data, &pl) == nil && pl.Batch == place.Batch {
			ids[pl.Custom] = true
		}
	}
	bs.members[place.Batch] = ids
}

// leave takes a call off its batch's waiters. When the last one leaves
// because its call was cancelled (and not because the process is
// stopping: a resumed run goes on waiting), nobody wants what the batch
// has not yet run, and it is cancelled.
func (bs *batches) leave(ctx context.Context, place batchPlace, cancelled bool) {
	bs.mu.Lock()
	p := bs.polls[place.Batch]
	if p == nil {
		bs.mu.Unlock()
		return
	}
	p.waiters--
	if p.waiters > 0 {
		bs.mu.Unlock()
		return
	}
	abandon := cancelled && p.ended == nil && !p.cancelled && !bs.r.e.closing.Load()
	if abandon {
		p.cancelled = true
	}
	if p.ended != nil || p.err != nil {
		// Every waiter has what it came for: a later one (another
		// attempt) asks again.
		delete(bs.polls, place.Batch)
	}
	bs.mu.Unlock()
	if abandon {
		bs.cancel(ctx, p, "every call waiting on it was cancelled")
	}
}

// cancel asks the provider to cancel batch p, outside the context of the
// call that gave it up (which may be what ended).
func (bs *batches) cancel(ctx context.Context, p *batchPoll, why string) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), batchCancelTimeout)
	defer stop()
	if err := p.b.CancelBatch(cctx, p.id); err != nil {
		bs.r.e.log.Warn("could not cancel a batch", "run", bs.r.id, "batch", p.id, "why", why, "err", err)
		return
	}
	bs.r.e.log.Info("batch cancelled", "run", bs.r.id, "batch", p.id, "why", why)
}

// wait returns the result of the call at place once its batch has ended.
// The call is among the batch's waiters (send or join counted it); wait
// takes it off.
func (bs *batches) wait(ctx context.Context, place batchPlace) (resp *llm.Response, err error) {
	bs.mu.Lock()
	p := bs.polls[place.Batch]
	bs.mu.Unlock()
	defer func() { bs.leave(ctx, place, ctx.Err() != nil) }()
	deadline := time.Now().Add(bs.deadline())
	if place.Sent > 0 {
		deadline = time.Unix(place.Sent, 0).Add(bs.deadline())
	}
	for {
		bs.mu.Lock()
		if p.err != nil {
			bs.mu.Unlock()
			return nil, p.err
		}
		if st := p.ended; st != nil {
			res, ok := st.Results[place.Custom]
			delete(st.Results, place.Custom) // each call takes its own, once
			bs.mu.Unlock()
			switch {
			case !ok && st.Err != nil:
				return nil, st.Err
			case !ok:
				return nil, &llm.Error{Kind: llm.KindTransient, Message: fmt.Sprintf("batch %s ended without a result for call %s", place.Batch, place.Custom)}
			case res.Err != nil:
				return nil, res.Err
			}
			return res.Response, nil
		}
		if time.Now().After(deadline) {
			p.err = fmt.Errorf("batch %s has not ended %s after it was sent (the providers end a batch within 24 hours): Hive gave it up", place.Batch, bs.deadline())
			cancel := !p.cancelled
			p.cancelled = true
			bs.mu.Unlock()
			if cancel {
				bs.cancel(ctx, p, "it did not end in time")
			}
			continue
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
		due := min(time.Until(p.next), time.Until(deadline)+time.Millisecond)
		bs.mu.Unlock()
		// This call polls for every call waiting on the batch; if its own
		// context ends, it hands the polling to another.
		err := sleep(ctx, due)
		polled := err == nil
		var st *llm.BatchStatus
		if polled {
			members := bs.membersOf(place.Batch)
			st, err = p.b.PollBatch(ctx, place.Batch, func(id string) bool { return members[id] })
		}
		bs.mu.Lock()
		p.polling = false
		if polled && ctx.Err() == nil {
			switch {
			case err == nil && st.Ended:
				p.ended = st
			case err == nil:
				p.fails = 0
			case !llm.KindOf(err).Retryable():
				p.err = fmt.Errorf("poll batch %s: %w", place.Batch, err)
			default:
				if p.fails++; p.fails >= maxPollFails {
					// Not retryable from here on: the batch may have
					// run, and sending its calls again would pay twice.
					p.err = fmt.Errorf("poll batch %s: %d polls in a row failed; the last: %s", place.Batch, p.fails, err)
				}
			}
			p.next = time.Now().Add(p.every)
			p.every = min(2*p.every, maxBatchPoll)
		}
		close(p.change)
		p.change = make(chan struct{})
		bs.mu.Unlock()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
}

// membersOf returns the custom ids of the run's calls in batch id.
func (bs *batches) membersOf(id string) map[string]bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.members[id]
}

// deadline is how long after it was sent a batch is given up.
func (bs *batches) deadline() time.Duration {
	if d := bs.r.e.opts.BatchDeadline; d > 0 {
		return d
	}
	return defaultBatchDeadline
}
