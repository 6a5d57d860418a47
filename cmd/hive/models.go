package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/provider"
)

func runModels(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "models", "[flags]")
	var g globalFlags
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	table := fs.Bool("prices", false, "also list the built-in price table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, _, err := g.load(env)
	if err != nil {
		return err
	}
	var rows []modelRow
	for _, name := range cfg.ModelNames() {
		mc := cfg.Models[name]
		p, known, err := provider.PriceOf(mc)
		if err != nil {
			return err
		}
		lc := provider.LimitConfig(mc.Limits)
		r := modelRow{Name: name, Provider: mc.Provider, ID: mc.ID, Tier: mc.Tier, BaseURL: mc.BaseURL, KeyEnv: mc.APIKeyEnv,
			KeySet: mc.APIKeyEnv == "" || env.Getenv(mc.APIKeyEnv) != "", Batch: mc.HasBatchAPI(), Concurrency: lc.MaxConcurrency, RPM: lc.RPM, TPM: lc.TPM}
		pol, err := provider.HedgePolicy(mc)
		if err != nil {
			return err
		}
		if pol != nil {
			r.Hedge = &hedgeJSON{After: mc.Hedge.After, To: pol.To, MinSamples: pol.Samples(), MaxShare: pol.Share(), Text: pol.String()}
		}
		if known {
			r.Price = &priceJSON{Input: p.Input.String(), Output: p.Output.String(), CacheWrite: p.CacheWrite.String(), CacheRead: p.CacheRead.String(), BatchDiscount: p.BatchDiscountPct, Source: p.Source, Date: p.Date}
		}
		rows = append(rows, r)
	}
	if *asJSON {
		out := struct {
			Config string      `json:"config"`
			Models []modelRow  `json:"models"`
			Table  []priceJSON `json:"price_table,omitempty"`
		}{Config: cfg.Path, Models: rows}
		if *table {
			for _, p := range price.Table() {
				out.Table = append(out.Table, priceRow(p))
			}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	if cfg.Path == "" {
		fmt.Fprintln(env.Stdout, "No hive.toml found: models are named anthropic:MODEL or openai:MODEL and read ANTHROPIC_* / OPENAI_* variables.")
	} else {
		fmt.Fprintf(env.Stdout, "Models in %s:\n", cfg.Path)
	}
	if len(rows) > 0 {
		fmt.Fprintln(w, "NAME\tPROVIDER\tMODEL\tTIER\tIN $/MTok\tOUT $/MTok\tCACHE W/R\tCONC\tRPM\tTPM\tKEY")
		for _, r := range rows {
			in, out, cache := "unknown", "unknown", "-"
			if r.Price != nil {
				in, out, cache = r.Price.Input, r.Price.Output, r.Price.CacheWrite+"/"+r.Price.CacheRead
			}
			key := "none needed"
			if r.KeyEnv != "" {
				key = r.KeyEnv + " (missing)"
				if r.KeySet {
					key = r.KeyEnv + " (set)"
				}
			}
			hedged := "off"
			if r.Hedge != nil {
				hedged = r.Hedge.Text
			}
			batch := "no"
			if r.Batch {
				batch = "yes"
				if r.Price != nil && r.Price.BatchDiscount > 0 {
					batch = fmt.Sprintf("-%d%%", r.Price.BatchDiscount)
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Provider, r.ID, r.Tier, in, out, cache,
				orDefault(r.Concurrency), orDefault(r.RPM), orDefault(r.TPM), batch, hedged, key)
		}
		w.Flush()
	}
	if *table {
		fmt.Fprintln(env.Stdout, "\nBuilt-in prices (USD per million tokens):")
		fmt.Fprintln(w, "MODEL\tINPUT\tOUTPUT\tCACHE WRITE\tCACHE READ\tBATCH\tDATE\tSOURCE")
		for _, p := range price.Table() {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t-%d%%\t%s\t%s\n", p.Model, p.Input.String(), p.Output.String(),
				p.CacheWrite.String(), p.CacheRead.String(), p.BatchDiscountPct, p.Date, p.Source)
		}
		w.Flush()
	}
	return nil
}

type modelRow struct {
	Name        string     `json:"name"`
	Provider    string     `json:"provider"`
	ID          string     `json:"model"`
	Tier        int        `json:"tier"`
	BaseURL     string     `json:"base_url,omitempty"`
	KeyEnv      string     `json:"api_key_env,omitempty"`
	KeySet      bool       `json:"api_key_set"`
	Price       *priceJSON `json:"price"` // null: unknown
	Concurrency int        `json:"concurrency,omitempty"`
	RPM         int        `json:"rpm,omitempty"`
	TPM         int        `json:"tpm,omitempty"`
	// Batch says whether the model's calls may go through its
	// provider's batch API.
	Batch bool `json:"batch_api"`
	// Hedge is the model's [models.NAME.hedge] table; null: no hedging.
	Hedge *hedgeJSON `json:"hedge"`
}

type hedgeJSON struct {
	After      string  `json:"after"`
	To         string  `json:"to,omitempty"`
	MinSamples int     `json:"min_samples"`
	MaxShare   float64 `json:"max_share"`
	Text       string  `json:"-"`
}

type priceJSON struct {
	Model      string `json:"model,omitempty"`
	Input      string `json:"input_per_mtok"`
	Output     string `json:"output_per_mtok"`
	CacheWrite string `json:"cache_write_per_mtok"`
	CacheRead  string `json:"cache_read_per_mtok"`
	// BatchDiscount is the percent off for calls sent in a batch.
	BatchDiscount int    `json:"batch_discount_pct"`
	Source        string `json:"source"`
	Date          string `json:"date"`
}

func priceRow(p price.Price) priceJSON {
	return priceJSON{Model: p.Model, Input: p.Input.String(), Output: p.Output.String(), CacheWrite: p.CacheWrite.String(), CacheRead: p.CacheRead.String(), BatchDiscount: p.BatchDiscountPct, Source: p.Source, Date: p.Date}
}

func orDefault(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}
