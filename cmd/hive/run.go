package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/mcp"
	"github.com/hive-swarm/hive/internal/price"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/treeview"
)

// Exit codes of the commands that follow a run.
const (
	exitFailed      = 1
	exitCancelled   = 3
	exitBudget      = 4
	exitInterrupted = 130
)

func runRun(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "run", `[flags] "TASK"  (or -f task.toml)`)
	var sf storeFlags
	sf.register(fs)
	var rf runFlags
	file := fs.String("f", "", "read the run from a TOML file with keys task, lead, tiers, budget_usd, budget_tokens, max_workers, max_depth, workspace, urgency, batch_tiers and [checks.NAME] and [mcp.NAME] tables (flags override it)")
	fs.StringVar(&rf.lead, "lead", "", "the lead's model (default: defaults.lead in hive.toml)")
	fs.StringVar(&rf.tiers, "tiers", "", "worker models, cheapest first: NAME,NAME,… (default: defaults.tiers)")
	fs.StringVar(&rf.budget, "budget", "", "the run's dollar budget, e.g. 2.50; 0 for none (default: defaults.budget_usd, else 1)")
	fs.Int64Var(&rf.budgetTokens, "budget-tokens", 0, "the run's token budget, input and output of every call; 0 for none (default: defaults.budget_tokens)")
	fs.IntVar(&rf.maxWorkers, "max-workers", 0, "workers in flight at once (default: defaults.max_workers, else 100)")
	fs.IntVar(&rf.maxDepth, "max-depth", 0, "delegation depth: 1 only the lead delegates, 2 workers may too (default: defaults.max_depth, else 2)")
	fs.StringVar(&rf.workspace, "workspace", "", "a directory the workers read and propose changes to, as patches; DIR itself is never written, but by --apply or hive apply")
	fs.BoolVar(&rf.batch, "batch", false, "not urgent: send the workers' calls through the providers' batch APIs, at half price, answered within 24 hours (urgency = \"batch\" in a task file)")
	apply := fs.Bool("apply", false, "when the run is done, write its merged patch into the workspace (as hive apply RUN does)")
	asJSON := fs.Bool("json", false, "print each event as one JSON line on stdout, then a result line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { rf.set[f.Name] = true })

	var tf taskFile
	if *file != "" {
		var err error
		if tf, err = readTaskFile(*file); err != nil {
			return err
		}
	}
	switch {
	case fs.NArg() == 1:
		tf.Task = fs.Arg(0)
	case fs.NArg() > 1:
		return usageErrorf("run takes one task argument (quote it)")
	}
	if strings.TrimSpace(tf.Task) == "" {
		return usageErrorf(`run needs a task: hive run "TASK", or -f task.toml with a task key`)
	}

	if *apply && rf.workspace == "" && tf.Workspace == "" {
		return usageErrorf("--apply writes a run's patch into its workspace, and this run has none: give --workspace DIR (or workspace in the task file)")
	}
	// The task file's servers read variables of their own: secrets too.
	sf.secretEnv = config.MCPSecretEnv(tf.MCP)
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	spec, err := runSpec(sess.cfg, tf, rf)
	if err != nil {
		return err
	}
	for _, name := range append([]string{spec.Lead}, spec.Tiers...) {
		if _, err := sess.reg.Get(name); err != nil {
			return err
		}
	}
	if err := sess.startEngine(ctx, env, ""); err != nil {
		return err
	}
	id, err := sess.engine.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("start the run: %w", err)
	}
	if !*asJSON {
		fmt.Fprintf(env.Stderr, "run %s started; follow it with hive show %s\n", id, id)
	}
	err = follow(ctx, env, sess, treeview.New(id), 0, spec.BudgetUSD, *asJSON)
	if err != nil || !*apply {
		return err
	}
	jr, err := sess.findRun(ctx, id)
	if err != nil {
		return err
	}
	if err := applyRun(ctx, env, sess, jr, "", false); errors.Is(err, errNoPatch) {
		fmt.Fprintf(env.Stderr, "run %s changed nothing: nothing to apply\n", id)
	} else if err != nil {
		return err
	}
	return nil
}

// runFlags are the flags of hive run that override the task file.
type runFlags struct {
	set                  map[string]bool // the flags given
	lead, tiers, budget  string
	budgetTokens         int64
	maxWorkers, maxDepth int
	workspace            string
	batch                bool
}

// taskFile is the -f file of hive run.
type taskFile struct {
	Task      string   `toml:"task"`
	Lead      string   `toml:"lead"`
	Tiers     []string `toml:"tiers"`
	BudgetUSD *float64 `toml:"budget_usd"`
	// BudgetTokens bounds the run's tokens; 0 takes hive.toml's.
	BudgetTokens int64 `toml:"budget_tokens"`
	MaxWorkers   int   `toml:"max_workers"`
	MaxDepth     int   `toml:"max_depth"`
	// Workspace is the directory workers read and propose changes to;
	// relative to the task file's directory.
	Workspace string `toml:"workspace"`
	// Checks are commands a task's verify may name, as [checks.NAME] of
	// hive.toml; a task file's override hive.toml's of the same name.
	Checks map[string]*config.Check `toml:"checks"`
	// MCP are MCP servers, as [mcp.NAME] of hive.toml; a task file's
	// override hive.toml's of the same name.
	MCP map[string]*mcp.ServerConfig `toml:"mcp"`
	// Urgency "batch" sends the workers' calls (of BatchTiers, or all)
	// through the providers' batch APIs.
	Urgency    string `toml:"urgency"`
	BatchTiers []int  `toml:"batch_tiers"`
}

func readTaskFile(path string) (taskFile, error) {
	var tf taskFile
	md, err := toml.DecodeFile(path, &tf)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
		return tf, fmt.Errorf("read task file: %w", err)
	case err != nil:
		return tf, fmt.Errorf("%s: %v (fix the task file)", path, config.DecodeError(err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return tf, fmt.Errorf("%s: unknown key %s (a task file takes task, lead, tiers, budget_usd, budget_tokens, max_workers, max_depth, workspace, urgency, batch_tiers and [checks.NAME] and [mcp.NAME] tables)", path, strings.Join(keys, ", "))
	}
	if err := config.ValidateChecks(tf.Checks, "checks"); err != nil {
		return tf, fmt.Errorf("%s: %v (fix the task file)", path, err)
	}
	if err := config.ValidateMCP(tf.MCP, nil); err != nil {
		return tf, fmt.Errorf("%s: %v (fix the task file)", path, err)
	}
	if tf.Workspace != "" && !filepath.IsAbs(tf.Workspace) {
		tf.Workspace = filepath.Join(filepath.Dir(path), tf.Workspace)
	}
	return tf, nil
}

// runSpec merges the run's settings: flags over the task file over
// hive.toml's defaults.
func runSpec(cfg *config.Config, tf taskFile, f runFlags) (swarm.Spec, error) {
	d := cfg.Defaults
	set := f.set
	spec := swarm.Spec{Task: tf.Task, Lead: d.Lead, Tiers: d.Tiers, MaxWorkers: d.MaxWorkers, MaxDepth: d.MaxDepth,
		Models: cfg.ModelNames(), Checks: swarm.ChecksFrom(cfg.Checks, tf.Checks),
		Workspace: tf.Workspace, WorkspaceHide: cfg.Workspace.Hide, WorkspaceShow: cfg.Workspace.Show}
	budgetText := strconv.FormatFloat(d.BudgetUSD, 'f', -1, 64)
	if tf.Lead != "" {
		spec.Lead = tf.Lead
	}
	if len(tf.Tiers) > 0 {
		spec.Tiers = tf.Tiers
	}
	if tf.BudgetUSD != nil {
		budgetText = strconv.FormatFloat(*tf.BudgetUSD, 'f', -1, 64)
	}
	spec.MaxTokens = d.BudgetTokens
	if tf.BudgetTokens != 0 {
		spec.MaxTokens = tf.BudgetTokens
	}
	if set["budget-tokens"] {
		spec.MaxTokens = f.budgetTokens
	}
	if tf.MaxWorkers != 0 {
		spec.MaxWorkers = tf.MaxWorkers
	}
	if tf.MaxDepth != 0 {
		spec.MaxDepth = tf.MaxDepth
	}
	if set["lead"] {
		spec.Lead = f.lead
	}
	if set["tiers"] {
		spec.Tiers = nil
		for _, t := range strings.Split(f.tiers, ",") {
			if t = strings.TrimSpace(t); t != "" {
				spec.Tiers = append(spec.Tiers, t)
			}
		}
	}
	if set["budget"] {
		budgetText = f.budget
	}
	if set["max-workers"] {
		spec.MaxWorkers = f.maxWorkers
	}
	if set["max-depth"] {
		spec.MaxDepth = f.maxDepth
	}
	if set["workspace"] {
		spec.Workspace = f.workspace
	}
	spec.Urgency, spec.BatchTiers = tf.Urgency, tf.BatchTiers
	if f.batch {
		spec.Urgency = swarm.UrgencyBatch
	}
	if spec.Workspace != "" {
		abs, err := workspaceDir(spec.Workspace, "--workspace")
		if err != nil {
			return spec, err
		}
		spec.Workspace = abs
	}
	spec.MCP = mergeMCP(cfg.MCP, tf.MCP)
	if err := config.ValidateMCP(spec.MCP, cfg); err != nil {
		return spec, usageErrorf("%v (fix hive.toml or the task file)", err)
	}
	var err error
	if spec.BudgetUSD, err = price.ParseUSD(budgetText); err != nil {
		return spec, usageErrorf("budget %q: %v (give dollars, like 2 or 0.50)", budgetText, err)
	}
	switch {
	case spec.Lead == "":
		return spec, usageErrorf("no lead model: pass --lead NAME or set lead under [defaults] in hive.toml (hive models lists the names)")
	case len(spec.Tiers) == 0:
		return spec, usageErrorf("no worker models: pass --tiers NAME,NAME or set tiers under [defaults] in hive.toml (hive models lists the names)")
	case spec.MaxWorkers < 0 || spec.MaxDepth < 0 || spec.MaxTokens < 0:
		return spec, usageErrorf("--max-workers, --max-depth and --budget-tokens take positive numbers")
	}
	return spec, nil
}

// workspaceDir returns dir, given with flag, as an absolute path, checked
// to be a directory.
func workspaceDir(dir, flag string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workspace %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", usageErrorf("workspace %s: %v (give a directory: %s DIR)", dir, errors.Unwrap(err), flag)
	case !fi.IsDir():
		return "", usageErrorf("workspace %s is not a directory (give a directory: %s DIR)", dir, flag)
	}
	return abs, nil
}

// mergeMCP returns the servers of hive.toml and of the task file, the task
// file's over hive.toml's of the same name; nil when there are none.
func mergeMCP(sets ...map[string]*mcp.ServerConfig) map[string]*mcp.ServerConfig {
	var out map[string]*mcp.ServerConfig
	for _, set := range sets {
		for name, s := range set {
			if out == nil {
				out = map[string]*mcp.ServerConfig{}
			}
			out[name] = s
		}
	}
	return out
}

// follow shows a run until it ends — live on a terminal, as JSON lines with
// asJSON — then prints its answer on stdout and returns the error that
// gives the exit code of its outcome. tree holds the run's state up to
// event afterSeq; the events after it are shown.
func follow(ctx context.Context, env *Env, sess *session, tree *treeview.Tree, afterSeq int64, budget price.Amount, asJSON bool) error {
	id := tree.RunID
	events := sess.engine.Watch(ctx, id, afterSeq)
	hint := "expand with hive show " + id
	_, _, tty := treeview.Terminal(env.Stderr)
	live := !asJSON && tty
	switch {
	case asJSON:
		enc := json.NewEncoder(env.Stdout)
		for ev := range events {
			tree.Apply(ev)
			if err := enc.Encode(ev); err != nil {
				return fmt.Errorf("write events: %w", err)
			}
		}
	case live:
		l := treeview.NewLive(env.Stderr, tree)
		l.Options.Budget, l.Options.Hint = budget, hint
		l.Follow(ctx, events, nil)
	default:
		for ev := range events {
			tree.Apply(ev)
		}
	}
	res, err := sess.engine.Wait(ctx, id)
	if ctx.Err() != nil {
		fmt.Fprintf(env.Stderr, "run %s interrupted; continue it with: hive resume %s\n", id, id)
		return &exitError{code: exitInterrupted, err: errSilent}
	}
	if err != nil {
		return runError(id, err)
	}
	if asJSON {
		out := resultJSON{Type: "result", ID: res.RunID, Status: res.Status, Answer: res.Answer, Error: res.Error,
			CostUSD: res.Cost.Dollars(), CostNanos: int64(res.Cost), Usage: res.Usage}
		if err := json.NewEncoder(env.Stdout).Encode(out); err != nil {
			return err
		}
	} else {
		if !live {
			tree.Render(env.Stderr, treeview.Options{MaxLines: 40, Budget: budget, Hint: hint})
		}
		if res.Answer != "" {
			fmt.Fprintln(env.Stdout, termSafe(strings.TrimRight(res.Answer, "\n")))
		}
		fmt.Fprintf(env.Stderr, "run %s %s · %s · %d nodes\n", id, res.Status, res.Cost, tree.Len())
		if _, _, content, err := sess.store.Artifact(ctx, id, swarm.RunPatch); err == nil {
			fmt.Fprintf(env.Stderr, "patch %s: %s\n  hive apply %s writes it into the workspace (hive apply --print %s shows it)\n", swarm.RunPatch, swarm.PatchSummary(string(content)), id, id)
		}
	}
	return outcome(res)
}

// resultJSON is the last line of hive run --json.
type resultJSON struct {
	Type      string       `json:"type"` // "result"
	ID        string       `json:"id"`
	Status    swarm.Status `json:"status"`
	Answer    string       `json:"answer"`
	Error     string       `json:"error,omitempty"`
	CostUSD   float64      `json:"cost_usd"`
	CostNanos int64        `json:"cost_nanos"`
	Usage     llm.Usage    `json:"usage"`
}

// runContextHint is what to do when a model's context overflowed in a run.
const runContextHint = "the conversation is longer than the model's context: raise the server's context size (llama-server -c, vllm --max-model-len) or use a model with a longer one"

// outcome is the error (and so the exit code) of how a run ended.
func outcome(res swarm.Result) error {
	switch res.Status {
	case swarm.StatusDone:
		return nil
	case swarm.StatusCancelled:
		return &exitError{code: exitCancelled, err: fmt.Errorf("run %s was cancelled; continue it with: hive resume %s", res.RunID, res.RunID)}
	}
	code := exitFailed
	if strings.Contains(res.Error, "budget exhausted") {
		code = exitBudget
	}
	msg := oneLine(res.Error)
	// The journal keeps the error as text; a model error's kind is in it.
	if strings.Contains(res.Error, llm.KindContextTooLong.String()) {
		msg += " (" + runContextHint + ")"
	}
	return &exitError{code: code, err: fmt.Errorf("run %s %s: %s (see hive show %s)", res.RunID, res.Status, msg, res.RunID)}
}
