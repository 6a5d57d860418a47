package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/audit"
	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/secret"
	"github.com/hive-swarm/hive/internal/swarm"
	"github.com/hive-swarm/hive/internal/telemetry"
	"github.com/hive-swarm/hive/internal/verify"
)

// storeFlags are the flags of the commands that read or run runs: the
// global ones and --db.
type storeFlags struct {
	globalFlags
	db string
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	f.globalFlags.register(fs)
	fs.StringVar(&f.db, "db", "", "the journal: a file path, sqlite:PATH or postgres://… URL (default: defaults.db in hive.toml, else hive/hive.db in $XDG_DATA_HOME or ~/.local/share)")
}

// session is what the run commands work with: the configuration, the
// models, the journal and, for the commands that drive runs, the engine.
type session struct {
	sb     *sandbox.Sandbox // nil until the engine opens one, or when code cannot run
	cfg    *config.Config
	reg    *provider.Registry
	log    *slog.Logger
	red    *secret.Redactor // the process's secrets, kept out of the journal
	store  *journal.Store
	engine *swarm.Engine
	// metrics, when set before startEngine, count the engine's calls
	// (hive serve's /metrics); tel reports to them and to the OTLP
	// collector the environment names, if any.
	metrics *telemetry.Metrics
	tel     *telemetry.Telemetry
}

// openStore loads the configuration and opens the journal.
func (f *storeFlags) openStore(ctx context.Context, env *Env) (*session, error) {
	cfg, reg, log, err := f.load(env)
	if err != nil {
		return nil, err
	}
	url, err := journalURL(f.db, cfg, env.Getenv)
	if err != nil {
		return nil, err
	}
	extra := envValues(env, f.secretEnv)
	extra["journal-password"] = urlPassword(url)
	red := redactorFor(cfg, env, extra)
	store, err := journal.Open(ctx, url, log)
	if err != nil {
		return nil, fmt.Errorf("%s (--db and defaults.db take a file path, sqlite:PATH, or a postgres:// URL)", red.String(oneLine(err.Error())))
	}
	store.Redact(red)
	ao := journal.AuditOptions{Ended: func(st string) bool { return swarm.Status(st).Final() }}
	if cfg.Audit.SigningKey != "" {
		if ao.Key, err = audit.LoadPrivateKey(cfg.Audit.SigningKey); err != nil {
			store.Close()
			return nil, fmt.Errorf("%v ([audit] signing_key in %s)", err, cfg.Path)
		}
	}
	if cfg.Audit.AnchorFile != "" {
		ao.Anchor = audit.AnchorFile{Path: cfg.Audit.AnchorFile}
	}
	store.SetAudit(ao)
	return &session{cfg: cfg, reg: reg, log: log, red: red, store: store}, nil
}

// startEngine starts the engine, which recovers the runs that stopped
// processes left unfinished. It says so on stderr when it recovers any but
// except (the run the command is about).
func (s *session) startEngine(ctx context.Context, env *Env, except string) error {
	tel, err := telemetry.Open(ctx, env.Getenv, s.log, telemetry.Options{Redact: s.red, Metrics: s.metrics})
	if err != nil {
		return fmt.Errorf("%v (see README: Traces and metrics)", err)
	}
	s.tel = tel
	opts := s.engineOptions(ctx, env)
	opts.Telemetry = tel
	e, err := swarm.New(ctx, s.store, s.reg, s.log, opts)
	if err != nil {
		return err
	}
	s.engine = e
	var others []string
	for _, id := range e.Recovered() {
		if id != except {
			others = append(others, id)
		}
	}
	if len(others) > 0 {
		list := strings.Join(others[:min(len(others), 5)], ", ")
		if len(others) > 5 {
			list += ", …"
		}
		fmt.Fprintf(env.Stderr, "hive: also continuing %d unfinished run(s) in this process until it exits: %s\n", len(others), list)
	}
	return nil
}

// engineOptions gives the engine a sandbox for run_code and the
// verifiers. Without isolation on this machine, code execution is off
// (runs still work; run_code says why) unless hive.toml asks for
// defaults.sandbox = "none", which runs code unsandboxed, logged as such.
func (s *session) engineOptions(ctx context.Context, env *Env) swarm.Options {
	sb, err := sandbox.New(ctx, sandboxConfig(s.cfg), s.log)
	if err != nil {
		s.log.Warn("code execution is off: "+oneLine(err.Error()), "fix", "see hive sandbox check")
		sb = nil
	}
	s.sb = sb
	v := verify.New(sb, s.log)
	v.Getenv = env.Getenv    // what a check's env names, from this process's environment
	scr, _ := s.cfg.Screen() // checked when the configuration was loaded
	ap := &swarm.ApprovalPolicy{Tools: s.cfg.Policy.Approval.Tools, Timeout: s.cfg.Policy.Approval.Timeout.Duration}
	rp := runPolicy(s.cfg)
	if sb == nil {
		// Checks with on_host = true still run, in a copy of a worker's tree.
		return swarm.Options{Verifier: v, TreeChecker: swarm.SandboxRunner{Getenv: env.Getenv, Log: s.log}, Redact: s.red, Getenv: env.Getenv, Screen: scr, Approval: ap, Policy: rp}
	}
	runner := swarm.SandboxRunner{Sandbox: sb, Getenv: env.Getenv, Log: s.log}
	return swarm.Options{Verifier: v, CodeRunner: runner, TreeChecker: runner, Redact: s.red, Getenv: env.Getenv, Screen: scr, Approval: ap, Policy: rp}
}

// close stops the engine (runs still going stay resumable) and the journal.
func (s *session) close() {
	ctx := context.Background()
	if s.engine != nil {
		s.engine.Close(ctx)
	}
	if s.sb != nil {
		s.sb.Close() // the sandboxes it keeps started
	}
	if s.tel != nil {
		// The spans of the runs' last moments; a collector that does not
		// answer holds the exit up for 5 s at most.
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.tel.Close(tctx); err != nil {
			s.log.Warn("traces not exported", "err", err)
		}
		cancel()
	}
	if err := s.store.Close(); err != nil {
		s.log.Error("close journal", "err", err)
	}
}

// findRun resolves a run id or unique prefix.
func (s *session) findRun(ctx context.Context, id string) (journal.Run, error) {
	r, err := s.store.Run(ctx, id)
	if err != nil {
		return journal.Run{}, runError(id, err)
	}
	return r, nil
}

// runError turns a failed run lookup into a line that says what to do.
func runError(id string, err error) error {
	switch {
	case errors.Is(err, journal.ErrNotFound) && len(id) < journal.MinPrefix:
		return fmt.Errorf("no run %s; a run is found by its whole id or its first %d characters or more (hive runs lists them)", id, journal.MinPrefix)
	case errors.Is(err, journal.ErrNotFound):
		return fmt.Errorf("no run %s; list runs with hive runs", id)
	case errors.Is(err, journal.ErrAmbiguous):
		return fmt.Errorf("%s; give more of the id (hive runs lists them)", oneLine(strings.TrimPrefix(err.Error(), "run ")))
	}
	return err
}

// journalURL is the journal to open: --db, else defaults.db in hive.toml
// (a relative path there is relative to the file), else
// [defaultJournalPath].
func journalURL(flagDB string, cfg *config.Config, getenv func(string) string) (string, error) {
	if flagDB != "" {
		return flagDB, nil
	}
	if db := cfg.Defaults.DB; db != "" {
		if cfg.Path != "" && !strings.Contains(db, ":") && !filepath.IsAbs(db) {
			db = filepath.Join(filepath.Dir(cfg.Path), db)
		}
		return db, nil
	}
	p, err := defaultJournalPath(getenv)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("create the data directory: %w (pass --db PATH)", err)
	}
	return p, nil
}

// defaultJournalPath is where runs are kept when nothing says otherwise:
// hive/hive.db in the user's data directory — $XDG_DATA_HOME, else
// ~/.local/share on Linux and the BSDs, ~/Library/Application Support on
// macOS, %LocalAppData% on Windows. Data, not configuration: it grows and
// holds prompts and answers, so it does not belong next to hive.toml.
func defaultJournalPath(getenv func(string) string) (string, error) {
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "hive", "hive.db"), nil
	}
	if runtime.GOOS == "windows" {
		if d := getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "hive", "hive.db"), nil
		}
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("no home directory to keep runs in: pass --db PATH or set defaults.db in hive.toml")
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support", "hive", "hive.db"), nil
	}
	return filepath.Join(home, ".local", "share", "hive", "hive.db"), nil
}

// openRun opens the journal and finds the run the command's one argument
// names (an id or a unique prefix of one). The caller closes the session.
func (f *storeFlags) openRun(ctx context.Context, env *Env, fs *flag.FlagSet) (*session, journal.Run, error) {
	if fs.NArg() != 1 {
		return nil, journal.Run{}, usageErrorf("%s takes one run id (hive runs lists them)", strings.TrimPrefix(fs.Name(), "hive "))
	}
	sess, err := f.openStore(ctx, env)
	if err != nil {
		return nil, journal.Run{}, err
	}
	jr, err := sess.findRun(ctx, fs.Arg(0))
	if err != nil {
		sess.close()
		return nil, journal.Run{}, err
	}
	return sess, jr, nil
}

// urlPassword returns the password of a database URL, if it has one.
func urlPassword(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return ""
	}
	pw, _ := p.User.Password()
	return pw
}

// sandboxConfig is the sandbox hive.toml asks for: defaults.sandbox and
// the [sandbox] table.
func sandboxConfig(cfg *config.Config) sandbox.Config {
	c := cfg.Sandbox
	out := sandbox.Config{Cgroups: c.Cgroups, MemoryCeiling: int64(c.MemoryCeiling),
		Limits: sandbox.Limits{Wall: c.Wall.Duration, CPU: c.CPU.Duration, Memory: int64(c.Memory), Procs: c.Procs}}
	if cfg.Defaults.Sandbox == "none" {
		out.Mode = sandbox.ModeNone
	}
	if c.Warm != nil {
		out.Warm = *c.Warm
		if out.Warm == 0 {
			out.Warm = -1 // none
		}
	}
	return out
}
