package swarm

import (
	"context"
	"fmt"
	"sync"

	"github.com/hive-swarm/hive/internal/limit"
	"github.com/hive-swarm/hive/internal/llm"
)

// verifierCaller makes the model calls of one verification (votes, a
// judge) as a verifier node under the node being verified: each call
// reserved against the run's budget, billed to that node, and journaled.
type verifierCaller struct {
	r      *run
	parent *nodeState // nil for the screen's classifier, whose node is a root
	key    string     // journal key prefix of the verification

	mu   sync.Mutex
	node *nodeState // created at the first call; guarded by mu
	n    int        // calls made; guarded by mu
}

func (c *verifierCaller) Call(ctx context.Context, model string, req *llm.Request) (*llm.Response, error) {
	// Checked when the task was delegated; again here, for the models a
	// verifier picks itself. The screen's model is the operator's.
	if c.parent != nil {
		if err := c.r.checkModel(model); err != nil {
			return nil, err
		}
	}
	m, err := c.r.e.models.Get(model)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.node == nil {
		if c.parent == nil {
			c.node = c.r.newNode("", RoleScreen, "screen the task", model, 0, 0)
		} else {
			c.node = c.r.newNode(c.parent.ID, RoleVerifier, "verify "+c.parent.Name, model, c.parent.Tier, c.parent.Depth+1)
		}
		c.r.setStatus(c.node, StatusRunning, "")
		// Under the span ctx is in: the verification's, or the run's for
		// the screen's classifier.
		c.r.startNode(ctx, c.node, m, nil)
	}
	ns := c.node
	ctx = c.r.spanOf(ns).Context(ctx)
	key := fmt.Sprintf("%s/call-%d", c.key, c.n)
	c.n++
	c.mu.Unlock()

	r := *req
	r.Messages = redactMessages(r.Messages, c.r.e.opts.Redact)
	if r.MaxTokens == 0 {
		r.MaxTokens = c.r.spec.CallTokens
	}
	rec, live, err := memoStepper{r: c.r}.call(ctx, key, func(ctx context.Context) (callRecord, error) {
		return c.r.traced(ctx, m, &r, func(ctx context.Context) (callRecord, error) {
			usd, tokens, err := worstCase(m, &r)
			if err != nil {
				return callRecord{}, err
			}
			res, err := c.r.pool.Reserve(usd, tokens)
			if err != nil {
				return callRecord{Exhausted: err.Error()}, nil
			}
			resp, err := m.Admitted(limit.Verifier).Generate(ctx, &r)
			if err != nil {
				res.Release()
				return callRecord{}, err
			}
			return settle(res, m, &r, resp, c.r.e.opts.Redact), nil
		})
	})
	if err != nil {
		return nil, err
	}
	if rec.Exhausted != "" {
		c.r.exhausted(&exhaustedError{msg: rec.Exhausted})
		return nil, &exhaustedError{msg: rec.Exhausted}
	}
	if !live {
		cost, tokens := rec.billed()
		c.r.pool.Charge(cost, tokens, 1)
	}
	c.r.chargeCall(ns, m, &rec, live)
	return rec.response()
}

// done ends the verifier node, if any call made one.
func (c *verifierCaller) done(outcome string) {
	c.mu.Lock()
	ns := c.node
	c.mu.Unlock()
	if ns != nil {
		c.r.update(ns, func(n *Node) { n.Status, n.Report, n.Ended = StatusDone, outcome, now() })
		c.r.endNode(ns)
	}
}
