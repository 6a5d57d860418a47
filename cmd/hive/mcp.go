package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/term"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/mcpserver"
	"github.com/hive-swarm/hive/internal/server"
)

// runMCP serves Hive's MCP tools (run_swarm, run_status, cancel_run) over
// stdin and stdout, for an MCP client that starts it: Claude Code
// ("claude mcp add hive -- hive mcp"), Claude Desktop, Cursor. Like hive
// serve it runs the engine in-process on the journal (continuing the runs
// a stopped process left unfinished). stdout carries only the protocol:
// logs go to stderr. It returns when the client closes stdin.
func runMCP(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "mcp", "[flags]")
	var sf storeFlags
	sf.register(fs)
	var roots []string
	fs.Func("workspace-root", "a directory under which run_swarm's caller may name a `DIR` as its workspace (repeatable; \".\" is the directory hive mcp starts in, a project's for Claude Code), besides [workspace] roots of hive.toml",
		func(dir string) error {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			if abs == "/" {
				return errors.New("\"/\" would let a client's model name any directory of this machine: name the directory that holds your projects")
			}
			roots = append(roots, abs)
			return nil
		})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("mcp takes no arguments; an MCP client starts it and talks to it over stdin and stdout")
	}
	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	sess.cfg.Workspace.Roots = append(sess.cfg.Workspace.Roots, roots...)
	if noLead(sess.cfg) {
		fmt.Fprintf(env.Stderr, "hive mcp: %s names no lead model ([defaults] lead, or a [swarms.NAME] lead), so run_swarm cannot start a run: configure one (see the README's hive.toml)\n", configName(sess.cfg))
	}
	if err := sess.startEngine(ctx, env, ""); err != nil {
		return err
	}
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(env.Stderr, "hive mcp: serving MCP on stdin and stdout, for an MCP client to start (claude mcp add hive -- hive mcp); Ctrl-D ends it")
	}
	srv := mcpserver.New(sess.engine, sess.cfg, server.MCPPlanner(sess.cfg), sess.log)
	in, ok := env.Stdin.(io.ReadCloser)
	if !ok {
		in = io.NopCloser(env.Stdin)
	}
	return srv.Serve(ctx, &mcp.IOTransport{Reader: in, Writer: nopCloser{env.Stdout}})
}

// nopCloser keeps the session from closing stdout, which is the
// process's, not the session's.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// noLead reports whether cfg gives no swarm a lead model.
func noLead(cfg *config.Config) bool {
	if cfg.Defaults.Lead != "" {
		return false
	}
	for _, sw := range cfg.Swarms {
		if sw != nil && sw.Lead != "" {
			return false
		}
	}
	return true
}

// configName names cfg's file for a message.
func configName(cfg *config.Config) string {
	if cfg.Path == "" {
		return "the built-in configuration (no hive.toml found)"
	}
	return cfg.Path
}
