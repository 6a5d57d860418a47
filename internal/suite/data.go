package suite

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// A DataFile is one file of the benchmark data, pinned to an upstream
// commit and checksum.
type DataFile struct {
	Path     string // slash-separated path under the data directory
	Repo     string // GitHub owner/name
	Commit   string // the pinned commit
	Upstream string // path inside Repo at Commit
	SHA256   string // hex sha256 of the file's bytes
}

// URL returns where f is downloaded from: base (e.g.
// "https://raw.githubusercontent.com") / repo / commit / upstream path.
func (f DataFile) URL(base string) string {
	return strings.TrimSuffix(base, "/") + "/" + f.Repo + "/" + f.Commit + "/" + f.Upstream
}

// RawGitHub is the base URL data files are downloaded from.
const RawGitHub = "https://raw.githubusercontent.com"

const (
	humanEvalRepo   = "openai/human-eval"
	humanEvalCommit = "6d43fb980f9fee3c892a914eda09951f772ad10d"
	debuggerRepo    = "FloridSleeves/LLMDebugger"
	debuggerCommit  = "49ac191f181d47911cf38e5b9944fbbe6d4a6e60"
	codeTRepo       = "microsoft/CodeT"
	codeTCommit     = "35f54d60b152cc31d134b788e702878ad613d9f7"
	gsmRepo         = "openai/grade-school-math"
	gsmCommit       = "3101c7d5072418e28b9008a6636bde82a006892c"
	routeRepo       = "lm-sys/RouteLLM"
	routeCommit     = "0b64fdafe049e596a3f5657c219329f24af24198"
)

var dataFiles = []DataFile{
	{"humaneval/HumanEval.jsonl.gz", humanEvalRepo, humanEvalCommit, "data/HumanEval.jsonl.gz",
		"b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"},
	{"humaneval/seeds/starcoder.jsonl", debuggerRepo, debuggerCommit, "input_data/humaneval/seed/starcoder/seed.jsonl",
		"6c5feb9a4a5cae3b62e44bc9f3d3e763f6fa9d77e3f5ac2c9d3a1b5c87f0dc6b"},
	{"humaneval/seeds/codellama.jsonl", debuggerRepo, debuggerCommit, "input_data/humaneval/seed/codellama/seed.jsonl",
		"9a4f40573313191652de7dcb3ef38d92ca343ed5154f21165a516a63f80ac4e7"},
	{"humaneval/seeds/gpt-3.5-turbo-0613.jsonl", debuggerRepo, debuggerCommit, "input_data/humaneval/seed/gpt-3.5-turbo-0613/seed.jsonl",
		"cf612616f10ee5527865918efb851d1565cef22d7be7e44bf473325c93bdd2ca"},
	{"humaneval/seeds/gpt-4-1106-preview.jsonl", debuggerRepo, debuggerCommit, "input_data/humaneval/seed/gpt-4-1106-preview/seed.jsonl",
		"ee5ad7a49fb3cee1ee3453ae41112b8bdaa4604a7fe38cd5b49bb53d479aa40c"},
	{"humaneval/seeds/reflexion.jsonl", debuggerRepo, debuggerCommit, "input_data/humaneval/seed/reflexion/seed.jsonl",
		"b89d85f67092aeacc296c23e644141b5b1d6a3b19fb157fbf2697c8376ac0c6e"},
	{"humaneval/codegen16b-100samples.jsonl", codeTRepo, codeTCommit, "CodeT/data/generated_data/HumanEval_codegen16B_temp0.8_topp0.95_num100_max300_code_solution.jsonl",
		"239b84349993c19a98bc4bf96a9a9ac47908125b3242db72788471e6c58728d5"},
	{"gsm8k/test.jsonl", gsmRepo, gsmCommit, "grade_school_math/data/test.jsonl",
		"3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"},
	{"gsm8k/gpt3-model-solutions.jsonl", gsmRepo, gsmCommit, "grade_school_math/data/example_model_solutions.jsonl",
		"4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b"},
	{"gsm8k/routellm-mixtral-gpt4-responses.csv", routeRepo, routeCommit, "routellm/evals/gsm8k/gsm8k_responses.csv",
		"1f38ed03db354a020f71e92022383dc3cf37bbf2694dea4daaeea7b6c43fe57b"},
}

// DataFiles returns every file of the benchmark data with its upstream
// commit and checksum.
func DataFiles() []DataFile { return append([]DataFile(nil), dataFiles...) }

// ErrChecksum marks a data file whose bytes differ from the pinned ones.
var ErrChecksum = errors.New("checksum mismatch")

// FileSHA256 returns the hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyFile checks that f is present under dir with its pinned checksum.
// A file with other bytes is an error wrapping [ErrChecksum]; a missing
// one wraps [os.ErrNotExist].
func VerifyFile(dir string, f DataFile) error {
	sum, err := FileSHA256(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return err
	}
	if sum != f.SHA256 {
		return fmt.Errorf("%s: %w: got sha256 %s, want %s", f.Path, ErrChecksum, sum, f.SHA256)
	}
	return nil
}

// VerifyData checks every data file under dir and returns the problems
// found, one per file, or nil when the data is complete.
func VerifyData(dir string) []error {
	var errs []error
	for _, f := range dataFiles {
		if err := VerifyFile(dir, f); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// ErrNoData is returned by [FindData] when no data directory exists.
var ErrNoData = errors.New("no benchmark data found: run `hive data fetch`, or pass --data DIR (or set HIVE_DATA)")

// Data sources, as [Locate] reports them.
const (
	SourceFlag       = "--data"
	SourceEnv        = "HIVE_DATA"
	SourceRepository = "../shared/data"
	SourceCache      = "cache"
)

// A Location is where benchmark data is looked up, and why there.
type Location struct {
	Dir    string
	Source string // SourceFlag, SourceEnv, SourceRepository or SourceCache
	Exists bool
}

// FindData returns the benchmark data directory: explicit when not empty
// (a --data flag), else $HIVE_DATA, else ../shared/data next to the Hive
// source tree when the working directory is inside it, else the user cache
// directory that "hive data fetch" fills (os.UserCacheDir()/hive/data).
// An explicit or HIVE_DATA directory must exist; when none of them exists
// the error is [ErrNoData].
func FindData(explicit string) (string, error) {
	loc, err := Locate(explicit, os.Getenv)
	if err != nil {
		return "", err
	}
	if !loc.Exists {
		return "", ErrNoData
	}
	return loc.Dir, nil
}

// Locate is [FindData] with the environment passed in, and it returns the
// location even when the directory does not exist (Exists false, for the
// fallback cache directory only).
func Locate(explicit string, getenv func(string) string) (Location, error) {
	for _, c := range []struct{ dir, source string }{{explicit, SourceFlag}, {getenv("HIVE_DATA"), SourceEnv}} {
		if c.dir == "" {
			continue
		}
		if !isDir(c.dir) {
			return Location{Dir: c.dir, Source: c.source}, fmt.Errorf("data directory %s (from %s) does not exist or is not a directory", c.dir, c.source)
		}
		return Location{Dir: c.dir, Source: c.source, Exists: true}, nil
	}
	if root := moduleRoot(); root != "" {
		dir := filepath.Join(root, "..", "shared", "data")
		if isDir(dir) {
			return Location{Dir: dir, Source: SourceRepository, Exists: true}, nil
		}
	}
	dir, err := CacheDir()
	if err != nil {
		return Location{}, fmt.Errorf("%w (%v)", ErrNoData, err)
	}
	return Location{Dir: dir, Source: SourceCache, Exists: isDir(dir)}, nil
}

// CacheDir returns the directory "hive data fetch" fills by default.
func CacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hive", "data"), nil
}

const modulePath = "github.com/hive-swarm/hive"

// moduleRoot returns the directory holding Hive's go.mod when the working
// directory is inside the Hive source tree, else "".
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if isModule(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
