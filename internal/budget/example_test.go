package budget_test

import (
	"errors"
	"fmt"

	"github.com/hive-swarm/hive/internal/budget"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/price"
)

// A call reserves its worst case before it is sent and settles its real
// cost after; the lead's final turn is set aside first.
func Example() {
	p, ok := price.Lookup("claude-haiku-4-5")
	if !ok {
		panic("unknown model")
	}
	run := budget.New(budget.Limits{USD: price.MustParseUSD("0.05")})
	final, _ := run.ChildNamed("lead", budget.Limits{}).SetAside(p.WorstCase(2000, 1000), 3000)
	worker := run.ChildNamed("worker", budget.Limits{})

	for i := 1; ; i++ {
		r, err := worker.Reserve(p.WorstCase(2000, 1000), 3000) // $0.0075: input at the cache-write rate
		if errors.Is(err, budget.ErrExhausted) {
			fmt.Println("call", i, "refused:", err)
			break
		}
		r.Settle(p.Cost(llm.Usage{InputTokens: 2000, OutputTokens: 300}), 2300) // $0.0035
	}
	r, err := final.Reserve(p.WorstCase(2000, 1000), 3000)
	fmt.Println("final turn:", err == nil)
	r.Settle(p.Cost(llm.Usage{InputTokens: 2000, OutputTokens: 500}), 2500)
	s := run.Stats()
	fmt.Println("spent", s.Spent, "calls", s.Calls)
	// Output:
	// call 12 refused: budget "run": usd exhausted: need $0.0075, $0.004 left
	// final turn: true
	// spent $0.043 calls 12
}
