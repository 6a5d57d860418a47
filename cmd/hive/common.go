package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/provider"
	"github.com/hive-swarm/hive/internal/secret"
)

// newFlags returns a flag set for a subcommand that reports errors instead
// of exiting, with usage printed to env.Stderr.
func newFlags(env *Env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("hive "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: hive %s %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; -h ends the command with code 0 once the flags
// are printed, other flag errors are usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// Let flags follow positional arguments too ("hive ask 'hi' -m x").
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return &exitError{code: 0, err: errSilent} // asked for: the flags were printed
			}
			return &exitError{code: 2, err: errSilentUsage{err}}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

// errSilentUsage is a flag error the flag package has already printed.
type errSilentUsage struct{ err error }

func (e errSilentUsage) Error() string { return e.err.Error() }
func (e errSilentUsage) Is(target error) bool {
	return target == errSilent
}

// globalFlags are the flags every command that touches models takes.
type globalFlags struct {
	config  string
	verbose bool
	// secretEnv names more variables whose values are secrets: those a
	// task file's MCP servers read. Set before load.
	secretEnv []string
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.config, "config", "", "path of hive.toml (default: $HIVE_CONFIG, ./hive.toml, then the user config dir)")
	fs.BoolVar(&g.verbose, "v", false, "log debug details to stderr")
}

// load reads the configuration and opens a model registry over it.
func (g *globalFlags) load(env *Env) (*config.Config, *provider.Registry, *slog.Logger, error) {
	path, err := config.Find(g.config, env.Getenv)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w (fix the file, or point --config elsewhere)", err)
	}
	log := newLogger(redactorFor(cfg, env, envValues(env, g.secretEnv)).Writer(env.Stderr), g.verbose)
	return cfg, provider.NewRegistry(cfg, env.Getenv, log), log, nil
}

// redactorFor knows the secrets of this process: the keys the models name,
// the standard key variables, the serve token's variable, the variables
// [secrets] env lists, every variable named like a secret, and extra.
func redactorFor(cfg *config.Config, env *Env, extra map[string]string) *secret.Redactor {
	names := []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", cfg.Serve.TokenEnv}
	for _, m := range cfg.Models {
		names = append(names, m.APIKeyEnv)
	}
	names = append(names, cfg.SecretEnv()...)
	var environ []string
	if env.Environ != nil {
		environ = env.Environ()
	}
	named := secret.Env(environ, names...)
	for _, n := range names {
		if v := env.Getenv(n); n != "" && v != "" {
			named[n] = v
		}
	}
	for n, v := range extra {
		named[n] = v
	}
	return secret.New(named)
}

// envValues returns the variables names lists that are set, by name.
func envValues(env *Env, names []string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		if v := env.Getenv(n); v != "" {
			out[n] = v
		}
	}
	return out
}

// newLogger logs warnings (debug with verbose) to w as text.
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// oneLine flattens an error message to a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
