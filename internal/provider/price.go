package provider

import (
	"fmt"
	"strconv"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/price"
)

// PriceOf returns mc's price: the config's override when it has one, else
// the table's row for its id; known is false when there is neither.
func PriceOf(mc *config.Model) (p price.Price, known bool, err error) {
	if o := mc.Price; o != nil {
		p = price.Price{Model: mc.ID, Source: o.Source, Note: "from hive.toml"}
		if p.Source == "" {
			p.Source = "hive.toml"
		}
		fields := []struct {
			name string
			v    *float64
			dst  *price.Amount
		}{
			{"input", o.Input, &p.Input}, {"output", o.Output, &p.Output},
			{"cache_write", o.CacheWrite, &p.CacheWrite}, {"cache_read", o.CacheRead, &p.CacheRead},
		}
		for _, f := range fields {
			if f.v == nil {
				continue
			}
			a, err := price.ParseUSD(strconv.FormatFloat(*f.v, 'f', -1, 64))
			if err != nil {
				return p, false, fmt.Errorf("models.%s.price.%s: %w", mc.Name, f.name, err)
			}
			*f.dst = a
		}
		if row, ok := price.Lookup(mc.ID); ok {
			p.BatchDiscountPct = row.BatchDiscountPct
		}
		if d := o.BatchDiscount; d != nil {
			if *d < 0 || *d > 100 {
				return p, false, fmt.Errorf("models.%s.price.batch_discount is %d: give the percent off for batch calls, 0 to 100", mc.Name, *d)
			}
			p.BatchDiscountPct = *d
		}
		return p, true, nil
	}
	p, known = price.Lookup(mc.ID)
	return p, known, nil
}
