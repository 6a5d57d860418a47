package price

// The built-in table. Numbers were checked against stored copies of the
// pages named in Source on 2026-11-28, unless Note says otherwise. Rates
// are dollars per million tokens, written as the vendors write them and
// parsed exactly.

const (
	srcAnthropic      = "https://platform.claude.com/docs/en/about-claude/pricing"
	srcOpenAI         = "https://developers.openai.com/api/docs/pricing"
	srcOpenAIDevDay   = "https://openai.com/blog/new-models-and-developer-products-announced-at-devday"
	srcOpenAIJune2023 = "https://openai.com/index/function-calling-and-other-api-updates/"
	srcOpenAI2022     = "https://openai.com/api/pricing/ (archived 2022-07-03: https://megalodon.jp/ref/2022-0703-1551-40/https://openai.com:443/api/pricing)"
	srcMistral        = "https://mistral.ai/technology/#pricing (open-mixtral-8x7b, as reproduced 2024-03-04 in https://gist.github.com/sj82516/862bed5e43648beef473a0635111c65f)"
	srcTogether       = "https://www.together.ai/pricing (serverless price by model size)"

	noteAnthropic = "CacheWrite is the 5-minute write rate; 1-hour writes are billed at 2x input (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching). Batch 50% per https://docs.anthropic.com/en/docs/build-with-claude/batch-processing."
	noteOpenAI    = "No explicit cache writes (CacheWrite 0 bills at Input); CacheRead is the cached-input rate. Batch API 50%."
)

// claude returns an Anthropic row: cache write 1.25x and read 0.1x input
// unless the page says otherwise (Haiku 3), batch 50%.
func claude(model string, aliases []string, in, out, cw, cr, date, note string) Price {
	return Price{
		Model: model, Aliases: aliases,
		Input: MustParseUSD(in), Output: MustParseUSD(out),
		CacheWrite: MustParseUSD(cw), CacheRead: MustParseUSD(cr),
		BatchDiscountPct: 50,
		Source:           srcAnthropic, Date: date,
		Note: joinNote(noteAnthropic, note),
	}
}

func openai(model string, aliases []string, in, cached, out, date, note string) Price {
	p := Price{
		Model: model, Aliases: aliases,
		Input: MustParseUSD(in), Output: MustParseUSD(out),
		BatchDiscountPct: 50,
		Source:           srcOpenAI, Date: date,
		Note: joinNote(noteOpenAI, note),
	}
	if cached != "" {
		p.CacheRead = MustParseUSD(cached)
	}
	return p
}

// flat returns a row with one rate for every token kind and no batch
// discount: historical and hosted open-weight prices.
func flat(model string, aliases []string, in, out, source, date, note string) Price {
	return Price{
		Model: model, Aliases: aliases,
		Input: MustParseUSD(in), Output: MustParseUSD(out),
		Source: source, Date: date, Note: note,
	}
}

func lowerBound(p Price) Price {
	p.LowerBound = true
	return p
}

func joinNote(a, b string) string {
	if b == "" {
		return a
	}
	return b + " " + a
}

func builtinRows() []Price {
	const idAssumed = "Model id assumed from Anthropic's naming pattern; the page lists the model by name."
	return []Price{
		// Anthropic, current and recent generations.
		claude("claude-opus-5", nil, "5", "25", "6.25", "0.50", "2026-11-28", idAssumed+" Date is when the price was read."),
		claude("claude-opus-4-8", nil, "5", "25", "6.25", "0.50", "2026-11-28", idAssumed+" Date is when the price was read."),
		claude("claude-opus-4-7", nil, "5", "25", "6.25", "0.50", "2026-11-28", idAssumed+" Date is when the price was read."),
		claude("claude-opus-4-6", nil, "5", "25", "6.25", "0.50", "2026-11-28", "Date is when the price was read."),
		claude("claude-opus-4-5", []string{"claude-opus-4-5-20251101"}, "5", "25", "6.25", "0.50", "2025-11-24", ""),
		claude("claude-opus-4-1", []string{"claude-opus-4-1-20250805"}, "15", "75", "18.75", "1.50", "2025-08-05", "Retired except on Bedrock and Google Cloud."),
		claude("claude-opus-4-0", []string{"claude-opus-4-20250514"}, "15", "75", "18.75", "1.50", "2025-05-22", "Retired except on Google Cloud."),
		claude("claude-sonnet-4-6", nil, "3", "15", "3.75", "0.30", "2026-11-28", "Date is when the price was read."),
		claude("claude-sonnet-4-5", []string{"claude-sonnet-4-5-20250929"}, "3", "15", "3.75", "0.30", "2025-09-29", ""),
		claude("claude-sonnet-4-0", []string{"claude-sonnet-4-20250514"}, "3", "15", "3.75", "0.30", "2025-05-22", ""),
		claude("claude-3-7-sonnet-20250219", []string{"claude-3-7-sonnet-latest"}, "3", "15", "3.75", "0.30", "2025-02-24", "Deprecated."),
		claude("claude-haiku-4-5", []string{"claude-haiku-4-5-20251001"}, "1", "5", "1.25", "0.10", "2025-10-15", ""),
		claude("claude-3-5-haiku-20241022", []string{"claude-3-5-haiku-latest"}, "0.80", "4", "1", "0.08", "2024-11-04", ""),
		claude("claude-3-haiku-20240307", nil, "0.25", "1.25", "0.30", "0.03", "2024-03-13", "Cache write 1.2x and read 0.12x input on the page, not 1.25x and 0.1x."),

		// OpenAI, current and recent generations.
		openai("gpt-5", []string{"gpt-5-2025-08-07"}, "1.25", "0.125", "10", "2025-08-07", ""),
		openai("gpt-5-mini", []string{"gpt-5-mini-2025-08-07"}, "0.25", "0.025", "2", "2025-08-07", "Not re-verified against a stored copy of the page (launch price)."),
		openai("gpt-5-nano", []string{"gpt-5-nano-2025-08-07"}, "0.05", "0.005", "0.40", "2025-08-07", "Per https://developers.openai.com/api/docs/models/gpt-5-nano."),
		openai("gpt-4.1", []string{"gpt-4.1-2025-04-14"}, "2", "0.50", "8", "2025-04-14", ""),
		openai("gpt-4.1-mini", []string{"gpt-4.1-mini-2025-04-14"}, "0.40", "0.10", "1.60", "2025-04-14", ""),
		openai("gpt-4.1-nano", []string{"gpt-4.1-nano-2025-04-14"}, "0.10", "0.025", "0.40", "2025-04-14", ""),
		openai("gpt-4o", []string{"gpt-4o-2024-08-06", "gpt-4o-2024-11-20"}, "2.50", "1.25", "10", "2024-08-06", ""),
		openai("gpt-4o-2024-05-13", nil, "5", "", "15", "2024-05-13", "The first gpt-4o snapshot, at its own higher price; no cached-input rate."),
		openai("gpt-4o-mini", []string{"gpt-4o-mini-2024-07-18"}, "0.15", "0.075", "0.60", "2024-07-18", ""),
		openai("o1", []string{"o1-2024-12-17"}, "15", "7.50", "60", "2024-12-17", ""),
		openai("o3", []string{"o3-2025-04-16"}, "2", "0.50", "8", "2025-06-10", "Price after the 2025-06-10 cut (launched at $10/$40); not re-verified against a stored copy of the page."),
		openai("o3-mini", []string{"o3-mini-2025-01-31"}, "1.10", "0.55", "4.40", "2025-01-31", ""),
		openai("o4-mini", []string{"o4-mini-2025-04-16"}, "1.10", "0.275", "4.40", "2025-04-16", ""),

		// Historical models of the recorded data sets (shared/data).
		flat("gpt-4-1106-preview", nil, "10", "30", srcOpenAIDevDay, "2023-11-06",
			"GPT-4 Turbo preview at DevDay: $0.01/1K input, $0.03/1K output. No prompt caching or batch API existed then."),
		lowerBound(flat("reflexion", nil, "10", "30", srcOpenAIDevDay, "2023-11-06",
			"Reflexion is GPT-4 with self-reflection and self-repair, priced as gpt-4-1106-preview per token. Only its final answer is recorded, not the test-writing, reflection and retry calls that led to it, so its cost here is a lower bound.")),
		flat("gpt-3.5-turbo-0613", nil, "1.50", "2", srcOpenAIJune2023, "2023-06-13",
			"$0.0015/1K input, $0.002/1K output, as announced with the 0613 snapshots."),
		flat("gpt3-175b", []string{"davinci"}, "60", "60", srcOpenAI2022, "2022-07-03",
			"Assumption: the GSM8K paper's GPT-3 175B is the API's Davinci. Base-model price, $0.06/1K tokens, one rate for prompt and completion; fine-tuned Davinci usage cost $0.12/1K, and Davinci was cut to $0.02/1K on 2022-09-01 (per third-party copies, not verified)."),
		flat("gpt3-6b", []string{"curie"}, "6", "6", srcOpenAI2022, "2022-07-03",
			"Assumption: the GSM8K paper's GPT-3 6B is the API's Curie (6.7B). Base-model price, $0.006/1K tokens; fine-tuned Curie usage cost $0.012/1K, and Curie was cut to $0.002/1K on 2022-09-01 (per third-party copies, not verified)."),
		flat("mixtral-8x7b-instruct", []string{"mixtral-8x7b-instruct-v0.1", "open-mixtral-8x7b"}, "0.70", "0.70", srcMistral, "2024-03-04",
			"Mistral's own list price; read from a public copy of the table, not the vendor page. Together AI listed $0.60 in and out."),
		flat("codellama", []string{"codellama-34b-instruct"}, "0.80", "0.80", srcTogether, "2024",
			"Estimate: open-weight CodeLlama-34B-Instruct priced at Together AI's 21.1B-41B size tier. The tier table was read from third-party copies; its date is not verified."),
		flat("starcoder", []string{"starcoder-15b"}, "0.30", "0.30", srcTogether, "2024",
			"Estimate: open-weight StarCoder-15B priced at Together AI's 8.1B-21B size tier. The tier table was read from third-party copies; its date is not verified."),
		flat("codegen-16b", nil, "0.30", "0.30", srcTogether, "2024",
			"Estimate: open-weight CodeGen-16B priced at Together AI's 8.1B-21B size tier. The tier table was read from third-party copies; its date is not verified."),
	}
}
