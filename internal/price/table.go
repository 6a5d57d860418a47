package price

import (
	"fmt"
	"slices"
	"strings"
)

// A Catalog is a set of prices that can be looked up by model id. The zero
// value is empty; [Builtin] returns the built-in table. A Catalog is never
// changed after it is made ([Catalog.With] returns a new one), so it is
// safe for concurrent use.
type Catalog struct {
	rows  []Price        // sorted by Model
	index map[string]int // lower-case id or alias → row
}

// Builtin returns a Catalog of the built-in table.
func Builtin() *Catalog { return builtin }

var builtin = mustCatalog(builtinRows())

// NewCatalog returns a Catalog of rows. Each row must be valid and no id or
// alias may name two rows.
func NewCatalog(rows []Price) (*Catalog, error) {
	c := &Catalog{index: make(map[string]int, 2*len(rows))}
	for _, p := range rows {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		c.rows = append(c.rows, p)
	}
	slices.SortFunc(c.rows, func(a, b Price) int { return strings.Compare(a.Model, b.Model) })
	for i, p := range c.rows {
		for _, id := range append([]string{p.Model}, p.Aliases...) {
			k := normID(id)
			if j, dup := c.index[k]; dup {
				return nil, fmt.Errorf("%w: id %q names both %s and %s", ErrInvalid, id, c.rows[j].Model, p.Model)
			}
			c.index[k] = i
		}
	}
	return c, nil
}

func mustCatalog(rows []Price) *Catalog {
	c, err := NewCatalog(rows)
	if err != nil {
		panic(err)
	}
	return c
}

// With returns a Catalog holding c's rows with ps added; a p whose Model is
// already in c (as an id or an alias) replaces that row, keeping the
// row's aliases when p has none. It is how hive.toml overrides and adds
// prices: look the model up, apply [Price.With], and put the result back.
func (c *Catalog) With(ps ...Price) (*Catalog, error) {
	var rows []Price
	if c != nil {
		rows = slices.Clone(c.rows)
	}
	for _, p := range ps {
		replaced := false
		for i := range rows {
			if rows[i].Model == p.Model || slices.Contains(rows[i].Aliases, p.Model) {
				if p.Aliases == nil {
					p.Aliases = rows[i].Aliases
				}
				p.Model = rows[i].Model
				rows[i], replaced = p, true
				break
			}
		}
		if !replaced {
			rows = append(rows, p)
		}
	}
	return NewCatalog(rows)
}

// Lookup finds the price of model. It tries, in order:
//
//  1. the id as given (case and surrounding space ignored), as a row's
//     Model or one of its Aliases;
//  2. the id without a known provider prefix: "anthropic:claude-…",
//     "openai/gpt-…", "mistralai/…" (see providerPrefixes). Other
//     prefixes are not stripped: a reseller's id may carry its own price.
//
// A dated snapshot matches only if the table lists it as an alias: it
// never falls back to its undated alias by guesswork, because snapshots of
// one alias have had different prices (gpt-4o-2024-05-13 cost twice what
// gpt-4o-2024-08-06 did). Unknown models return false; callers must then
// report the cost as unknown, never as zero.
func (c *Catalog) Lookup(model string) (Price, bool) {
	if c == nil {
		return Price{}, false
	}
	id := normID(model)
	if i, ok := c.index[id]; ok {
		return c.row(i), true
	}
	if j := strings.IndexAny(id, ":/"); j > 0 && slices.Contains(providerPrefixes, id[:j]) {
		if i, ok := c.index[id[j+1:]]; ok {
			return c.row(i), true
		}
	}
	return Price{}, false
}

// row returns a copy of row i that the caller may change freely.
func (c *Catalog) row(i int) Price {
	p := c.rows[i]
	p.Aliases = slices.Clone(p.Aliases)
	return p
}

// Rows returns c's prices sorted by Model.
func (c *Catalog) Rows() []Price {
	if c == nil {
		return nil
	}
	out := make([]Price, len(c.rows))
	for i := range c.rows {
		out[i] = c.row(i)
	}
	return out
}

// Lookup finds model in the built-in table; see [Catalog.Lookup].
func Lookup(model string) (Price, bool) { return builtin.Lookup(model) }

// Table returns the built-in table sorted by Model.
func Table() []Price { return builtin.Rows() }

// providerPrefixes are the provider names Lookup strips from "NAME:id" and
// "NAME/id": the vendors whose own list prices the table holds.
var providerPrefixes = []string{"anthropic", "openai", "mistral", "mistralai"}

func normID(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
