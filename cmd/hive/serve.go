package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/hive-swarm/hive/internal/config"
	"github.com/hive-swarm/hive/internal/server"
	"github.com/hive-swarm/hive/internal/telemetry"
)

// runServe serves the HTTP API and the live web view over the journal,
// running the engine in this process (so it also continues the runs a
// stopped process left unfinished).
func runServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "serve", "[flags]")
	var sf storeFlags
	sf.register(fs)
	addr := fs.String("addr", "", "where to listen, HOST:PORT (default: serve.addr in hive.toml, else 127.0.0.1:7070)")
	insecure := fs.Bool("insecure-remote", false, "allow a non-loopback --addr without TLS (only behind a proxy that terminates TLS)")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM); needs --tls-key")
	key := fs.String("tls-key", "", "the private key (PEM) of --tls-cert")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("serve takes no arguments")
	}
	if (*cert == "") != (*key == "") {
		return usageErrorf("--tls-cert and --tls-key go together")
	}
	tls := *cert != ""
	// Check what the flags alone decide before opening anything.
	if *addr != "" {
		if err := server.CheckAddr(*addr, tls, *insecure); err != nil {
			return usageErrorf("%v", err)
		}
	}

	sess, err := sf.openStore(ctx, env)
	if err != nil {
		return err
	}
	defer sess.close()
	if *addr == "" {
		*addr = sess.cfg.Serve.Addr
		if err := server.CheckAddr(*addr, tls, *insecure); err != nil {
			return usageErrorf("serve.addr in hive.toml: %v", err)
		}
	}
	token, fresh, err := serveToken(env.Getenv, sess.cfg.Serve.TokenEnv)
	if err != nil {
		return err
	}
	tokens, err := serveTokens(env.Getenv, sess.cfg.Serve.Tokens, token)
	if err != nil {
		return err
	}
	sess.metrics = telemetry.NewMetrics()
	if err := sess.startEngine(ctx, env, ""); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another hive serve running? pick another --addr)", *addr, err)
	}
	// Requests (event streams above all) end when the server stops.
	reqCtx, stopRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRequests()
	srv := server.New(sess.engine, sess.store, sess.cfg, sess.log, token)
	srv.Tokens = tokens
	srv.Metrics = sess.metrics.Handler()
	hs := &http.Server{
		Handler:     srv.Handler(),
		BaseContext: func(net.Listener) context.Context { return reqCtx },
	}
	srv.Configure(hs)
	ln = srv.LimitListener(ln)
	serving(hs)
	scheme := "http"
	if tls {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s/", scheme, ln.Addr())
	if fresh {
		fmt.Fprintf(env.Stdout, "hive serve: open %s?token=%s\n(the token is kept in your config directory and printed only this once; API clients send it as Authorization: Bearer TOKEN)\n", url, token)
	} else {
		from := "$" + sess.cfg.Serve.TokenEnv
		if strings.TrimSpace(env.Getenv(sess.cfg.Serve.TokenEnv)) == "" {
			if dir, err := userConfigDir(env.Getenv); err == nil {
				from = filepath.Join(dir, "hive", "serve.token")
			}
		}
		fmt.Fprintf(env.Stdout, "hive serve: listening on %s (the token is in %s: open %s?token=TOKEN; API clients send Authorization: Bearer TOKEN)\n", url, from, url)
	}
	if len(tokens) > 0 {
		names := make([]string, len(tokens))
		for i, t := range tokens {
			names[i] = t.Name
		}
		fmt.Fprintf(env.Stdout, "hive serve: API tokens of their own (each sees only its runs): %s\n", strings.Join(names, ", "))
	}

	errc := make(chan error, 1)
	go func() {
		if tls {
			errc <- hs.ServeTLS(ln, *cert, *key)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(env.Stderr, "hive serve: stopping; unfinished runs stay resumable")
	stopRequests()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serving is called with the http.Server hive serve is about to serve
// (tests look at it).
var serving = func(*http.Server) {}

// serveTokens reads the [serve.tokens.NAME] tokens from the variables
// they name: each must be set, and differ from the main token and the
// others (a token shared would make two principals one).
func serveTokens(getenv func(string) string, cfg map[string]*config.ServeToken, main string) ([]server.Token, error) {
	var out []server.Token
	seen := map[string]string{main: "the main token"}
	for _, name := range slices.Sorted(maps.Keys(cfg)) {
		t := cfg[name]
		v := strings.TrimSpace(getenv(t.Env))
		switch {
		case v == "":
			return nil, fmt.Errorf("serve.tokens.%s: $%s is not set: set it to the token's secret, or remove the table", name, t.Env)
		case len(v) < 16:
			return nil, fmt.Errorf("serve.tokens.%s: $%s holds under 16 characters: give a long random token (openssl rand -hex 32)", name, t.Env)
		case seen[v] != "":
			return nil, fmt.Errorf("serve.tokens.%s: $%s holds the same token as %s: give each its own", name, t.Env, seen[v])
		}
		seen[v] = "serve.tokens." + name
		out = append(out, server.Token{Name: name, Value: v, Approve: t.Approve})
	}
	return out, nil
}

// serveToken is the API token: the environment variable tokenEnv names,
// else the one kept in the user config dir (hive/serve.token), else a new
// one written there (fresh: print it once).
func serveToken(getenv func(string) string, tokenEnv string) (token string, fresh bool, err error) {
	if t := strings.TrimSpace(getenv(tokenEnv)); t != "" {
		return t, false, nil
	}
	dir, err := userConfigDir(getenv)
	if err != nil {
		return "", false, fmt.Errorf("%v: set %s to a token of your choice", err, tokenEnv)
	}
	path := filepath.Join(dir, "hive", "serve.token")
	if data, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(data)); t != "" {
			return t, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read the token: %w (remove %s to make a new one, or set %s)", err, path, tokenEnv)
	}
	var b [32]byte
	rand.Read(b[:])
	token = hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("keep the token: %w (or set %s)", err, tokenEnv)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("keep the token: %w (or set %s)", err, tokenEnv)
	}
	_, werr := f.WriteString(token + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("keep the token: %w (or set %s)", werr, tokenEnv)
	}
	return token, true, nil
}

// userConfigDir is os.UserConfigDir read through getenv.
func userConfigDir(getenv func(string) string) (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := getenv("AppData"); d != "" {
			return d, nil
		}
	case "darwin":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support"), nil
		}
	default:
		if d := getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
			return d, nil
		}
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, ".config"), nil
		}
	}
	return "", errors.New("no user config directory to keep the API token in")
}
