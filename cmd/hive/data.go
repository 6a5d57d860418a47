package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hive-swarm/hive/internal/suite"
)

// dataBaseURL is where data files are downloaded from; tests point it at
// a local server.
var dataBaseURL = suite.RawGitHub

const dataUsage = `Usage:
  hive data fetch [--dir DIR]   download the benchmark data from the pinned upstream
                                commits into DIR (default: the user cache dir), checking
                                each file's sha256
  hive data path [--data DIR]   print where benchmark data is looked up and whether it
                                is complete`

func runData(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(env.Stderr, dataUsage)
		return usageErrorf("data: missing subcommand (fetch or path)")
	}
	switch args[0] {
	case "fetch":
		return runDataFetch(ctx, env, args[1:])
	case "path":
		return runDataPath(env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(env.Stdout, dataUsage)
		return nil
	}
	return usageErrorf("data: unknown subcommand %q (want fetch or path)", args[0])
}

func newDataFlags(name string, env *Env) *flag.FlagSet {
	fs := flag.NewFlagSet("hive data "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprintln(env.Stderr, dataUsage) }
	return fs
}

func runDataFetch(ctx context.Context, env *Env, args []string) error {
	fs := newDataFlags("fetch", env)
	dir := fs.String("dir", "", "directory to fill (default: the user cache dir)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageErrorf("data fetch: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("data fetch: unexpected argument %q", fs.Arg(0))
	}
	if *dir == "" {
		d, err := suite.CacheDir()
		if err != nil {
			return fmt.Errorf("data fetch: no cache directory (%v); pass --dir", err)
		}
		*dir = d
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	if err := fetchData(ctx, client, dataBaseURL, *dir, suite.DataFiles(), env.Stdout); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "benchmark data complete in %s\n", *dir)
	return nil
}

// fetchData downloads each of files from base into dir, skipping files
// already there with the pinned checksum. A download whose checksum
// differs is deleted and reported; the other files are still fetched.
func fetchData(ctx context.Context, client *http.Client, base, dir string, files []suite.DataFile, out io.Writer) error {
	var errs []error
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if suite.VerifyFile(dir, f) == nil {
			fmt.Fprintf(out, "ok       %s\n", f.Path)
			continue
		}
		n, err := fetchFile(ctx, client, base, dir, f)
		if err != nil {
			fmt.Fprintf(out, "FAILED   %s: %v\n", f.Path, err)
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(out, "fetched  %s (%d bytes)\n", f.Path, n)
	}
	if len(errs) > 0 {
		// Each failure is printed above; the first is repeated, with what
		// to do.
		return fmt.Errorf("data fetch: %d of %d files failed, the first: %v; with no network, point Hive at a copy of the data: set HIVE_DATA=DIR or pass --data DIR", len(errs), len(files), errs[0])
	}
	return nil
}

// fetchFile downloads f into a temporary file next to its destination,
// hashing as it writes, and renames it into place only when the sha256 is
// the pinned one.
func fetchFile(ctx context.Context, client *http.Client, base, dir string, f suite.DataFile) (int64, error) {
	dst := filepath.Join(dir, filepath.FromSlash(f.Path))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL(base), nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: GET %s: %s", f.Path, f.URL(base), resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		// Not what was pinned: refuse it, and leave no file of that
		// name behind.
		os.Remove(dst)
		return 0, fmt.Errorf("%s: %w: got sha256 %s, want %s; refused and deleted", f.Path, suite.ErrChecksum, sum, f.SHA256)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	return n, nil
}

func runDataPath(env *Env, args []string) error {
	fs := newDataFlags("path", env)
	data := fs.String("data", "", "benchmark data directory")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageErrorf("data path: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("data path: unexpected argument %q", fs.Arg(0))
	}
	loc, err := suite.Locate(*data, env.Getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s\t(from %s)\n", loc.Dir, loc.Source)
	if !loc.Exists {
		fmt.Fprintln(env.Stdout, "missing: run `hive data fetch`, or pass --data DIR (or set HIVE_DATA)")
		return errSilent
	}
	problems := suite.VerifyData(loc.Dir)
	if len(problems) == 0 {
		fmt.Fprintf(env.Stdout, "complete: %d files with their pinned sha256\n", len(suite.DataFiles()))
		return nil
	}
	fmt.Fprintf(env.Stdout, "incomplete: %d of %d files missing or changed:\n", len(problems), len(suite.DataFiles()))
	for _, p := range problems {
		fmt.Fprintf(env.Stdout, "  %v\n", p)
	}
	fmt.Fprintln(env.Stdout, "run `hive data fetch` to repair it")
	return errSilent
}
