package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hive-swarm/hive/internal/secret"
)

// allImpls are the implementations, in the table's order.
var allImpls = []string{"bare", "hive", "eino", "langchaingo", "langgraph"}

// options are a benchmark's settings.
type options struct {
	Impls     []string
	Ns        []int
	Latencies []time.Duration
	Reps      int
	Cap       int
	// ModuleDir is this module's directory, where each Go
	// implementation's binary is built.
	ModuleDir string
	// LangGraphDir holds the LangGraph.js implementation (its
	// package.json); node_modules is installed there with npm ci when
	// missing.
	LangGraphDir string
	// Profiles, when set, is a directory where each Go child writes the
	// CPU profile of its job (IMPL-nN-LATENCY-rREP.cpu.pprof) and its
	// heap profile once the job is done (….heap.pprof).
	Profiles string
	// Log gets a line for each run.
	Log io.Writer
}

// A cell is one setting of the table.
type cell struct {
	N       int
	Latency time.Duration
}

// ideal is the job's wall time with no overhead at all: two lead calls
// and two calls for each wave of cap workers.
func (c cell) ideal(cap int) time.Duration {
	waves := (c.N + cap - 1) / cap
	return time.Duration(2+2*waves) * c.Latency
}

// A sample is one run of one implementation.
type sample struct {
	Impl    string        `json:"impl"`
	N       int           `json:"n"`
	Latency time.Duration `json:"latency_ns"`
	Rep     int           `json:"rep"`
	Wall    time.Duration `json:"wall_ns"`
	// JobCPU is the child's CPU over the job; ProcCPU its CPU over its
	// whole life (start-up, preparation and shutdown too).
	JobCPU      time.Duration `json:"job_cpu_ns"`
	ProcCPU     time.Duration `json:"proc_cpu_ns"`
	PeakRSSKB   int64         `json:"peak_rss_kb"`
	RSSBeforeKB int64         `json:"rss_before_kb"`
	GoSysKB     int64         `json:"go_sys_kb,omitempty"`
	// LiveBeforeKB and PeakLiveKB are the Go heap's live bytes before
	// and at most during the job (childResult); 0 for node.
	LiveBeforeKB int64       `json:"live_before_kb,omitempty"`
	PeakLiveKB   int64       `json:"peak_live_kb,omitempty"`
	Server       serverStats `json:"server"`
	// Before is the time from the job's start to the lead's first call;
	// After from the lead's last answer to the job's end.
	Before time.Duration `json:"before_ns"`
	After  time.Duration `json:"after_ns"`
}

// calls is the job's model calls: 2n+2.
func (s sample) calls() int { return 2*s.N + 2 }

// perWorkerKB is the memory the job added, per worker in flight.
func (s sample) perWorkerKB(cap int) float64 {
	return float64(s.PeakRSSKB-s.RSSBeforeKB) / float64(min(s.N, cap))
}

// liveWorkerKB is the live heap the job added, per worker in flight, or
// -1 when the child did not say (node).
func (s sample) liveWorkerKB(cap int) float64 {
	if s.PeakLiveKB == 0 {
		return -1
	}
	return float64(s.PeakLiveKB-s.LiveBeforeKB) / float64(min(s.N, cap))
}

// bench runs every implementation o names on every cell, o.Reps times,
// interleaved: each repetition runs each cell with every implementation,
// their order turned by one from each cell to the next.
func bench(ctx context.Context, o options) ([]sample, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	for _, impl := range o.Impls {
		if _, ok := goImpls[impl]; !ok && impl != "langgraph" {
			return nil, fmt.Errorf("no implementation %q (have %s)", impl, strings.Join(allImpls, ", "))
		}
		if impl == "langgraph" {
			if err := nodeDeps(ctx, o.LangGraphDir, o.Log); err != nil {
				return nil, err
			}
		}
	}
	tmp, err := os.MkdirTemp("", "hive-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	for _, impl := range o.Impls {
		if impl == "langgraph" {
			continue
		}
		if bins[impl], err = buildSolo(ctx, o.ModuleDir, tmp, impl); err != nil {
			return nil, err
		}
	}
	dirs := map[int]string{}
	for _, n := range o.Ns {
		dirs[n] = filepath.Join(tmp, fmt.Sprintf("n%d", n))
		if err := makeTaskDir(dirs[n], n); err != nil {
			return nil, err
		}
	}
	srv, err := startServer(exe)
	if err != nil {
		return nil, err
	}
	defer srv.close()

	var cells []cell
	for _, lat := range o.Latencies {
		for _, n := range o.Ns {
			cells = append(cells, cell{n, lat})
		}
	}
	var out []sample
	turn := 0
	for rep := range o.Reps {
		for _, c := range cells {
			k := turn % len(o.Impls)
			order := slices.Concat(o.Impls[k:], o.Impls[:k])
			turn++
			for _, impl := range order {
				s, err := runOne(ctx, bins[impl], srv, o, impl, c, rep, dirs[c.N])
				if err != nil {
					return out, fmt.Errorf("%s, n=%d, latency %s: %w", impl, c.N, c.Latency, err)
				}
				st := s.Server
				fmt.Fprintf(o.Log, "rep %d/%d  n=%-5d %-6s %-12s wall %7.3fs  cpu %6.0f µs/call  peak %6.1f MiB  %6.1f KB/worker (live %5.1f)  max %d in flight  gaps: before %s, dispatch %s, turn %s (max %s), collect %s, after %s\n",
					rep+1, o.Reps, c.N, c.Latency, impl, s.Wall.Seconds(), float64(s.JobCPU.Microseconds())/float64(s.calls()),
					float64(s.PeakRSSKB)/1024, s.perWorkerKB(o.Cap), s.liveWorkerKB(o.Cap), st.MaxInFlight,
					ms(s.Before), ms(st.Dispatch), ms(st.TurnGap), ms(st.TurnGapMax), ms(st.Collect), ms(s.After))
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// buildSolo builds the binary of the Go implementation impl alone into
// dir: a child's memory then holds its own packages and no other's.
func buildSolo(ctx context.Context, moduleDir, dir, impl string) (string, error) {
	exe := filepath.Join(dir, "peer-"+impl)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags=peers_solo,peers_"+impl, "-o", exe, ".")
	cmd.Dir = moduleDir
	cmd.Env = toolEnviron(os.Environ())
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", impl, err, out)
	}
	return exe, nil
}

// runOne runs impl once on c in a child process (exe, or node for
// LangGraph) and checks it at the server: exactly 2n+2 calls, each
// placed, every tool result right.
func runOne(ctx context.Context, exe string, srv *serverProc, o options, impl string, c cell, rep int, dir string) (sample, error) {
	if err := srv.setLatency(c.Latency); err != nil {
		return sample{}, err
	}
	if _, err := srv.stats(); err != nil { // start counting anew
		return sample{}, err
	}
	spec := childSpec{Role: "job", Impl: impl, job: job{N: c.N, Cap: o.Cap, URL: srv.url, Dir: dir}}
	if o.Profiles != "" && impl != "langgraph" {
		base := filepath.Join(o.Profiles, fmt.Sprintf("%s-n%d-%s-r%d", impl, c.N, c.Latency, rep+1))
		spec.CPUProfile, spec.MemProfile = base+".cpu.pprof", base+".heap.pprof"
	}
	raw, _ := json.Marshal(spec)
	var cmd *exec.Cmd
	if impl == "langgraph" {
		cmd = exec.CommandContext(ctx, "node", filepath.Join(o.LangGraphDir, "fanout.mjs"))
	} else {
		cmd = exec.CommandContext(ctx, exe)
	}
	cmd.Env = childEnviron(childEnv + "=" + string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return sample{}, fmt.Errorf("%v\n%s", err, tail(stderr.String(), 4000))
	}
	var res childResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		return sample{}, fmt.Errorf("the child's result %q: %v\n%s", stdout.String(), err, tail(stderr.String(), 4000))
	}
	if want := wantAnswer(c.N); res.Answer != want {
		return sample{}, fmt.Errorf("answered %q, want %q", res.Answer, want)
	}
	st, err := srv.stats()
	if err != nil {
		return sample{}, err
	}
	s := sample{Impl: impl, N: c.N, Latency: c.Latency, Rep: rep + 1, Wall: time.Duration(res.WallNS), JobCPU: time.Duration(res.CPUNS),
		RSSBeforeKB: res.RSSBeforeKB, PeakRSSKB: res.PeakRSSKB, GoSysKB: res.GoSysKB,
		LiveBeforeKB: res.LiveBeforeKB, PeakLiveKB: res.PeakLiveKB, Server: st,
		Before: time.Duration(st.FirstCall - res.Start), After: time.Duration(res.End - st.LastAnswer)}
	if st.Calls != int64(s.calls()) || st.Unknown != 0 || st.Wrong != 0 {
		return s, fmt.Errorf("the server saw %d calls (want %d), %d it could not place, %d wrong tool results", st.Calls, s.calls(), st.Unknown, st.Wrong)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.ProcCPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// nodeDeps installs the LangGraph implementation's packages with npm ci
// when node_modules is missing.
func nodeDeps(ctx context.Context, dir string, log io.Writer) error {
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return nil
	}
	fmt.Fprintf(log, "npm ci in %s\n", dir)
	// No package's install script runs (none of LangGraph's needs one).
	cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = toolEnviron(os.Environ())
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s (LangGraph.js needs node and the npm registry): %w", dir, err)
	}
	return nil
}

// childEnviron is the environment of an implementation's process and the
// model server's: a few variables of the driver's, none of its secrets
// (LangChain's ChatOpenAI, for one, reads OPENAI_API_KEY by itself and
// would send it to the local server), and extra.
func childEnviron(extra ...string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// toolEnviron is the environment of the toolchains the driver runs (go
// build, npm ci): environ, which they need for GOPATH, GOPROXY, npm's
// settings and the like, less every variable whose name says it holds a
// secret (Hive's rule, secret.Env). No model output reaches them, but npm
// fetches other people's code, and none of it needs an API key.
func toolEnviron(environ []string) []string {
	secrets := secret.Env(environ)
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := secrets[k]; !ok {
			env = append(env, kv)
		}
	}
	return env
}

// serverProc is the model server's process, steered over its stdin.
type serverProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	url string
}

func startServer(exe string) (*serverProc, error) {
	cmd := exec.Command(exe)
	cmd.Env = childEnviron(childEnv + `={"role":"serve"}`)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
	url, err := p.out.ReadString('\n')
	if err != nil {
		p.close()
		return nil, fmt.Errorf("start the model server: %w", err)
	}
	p.url = strings.TrimSpace(url)
	return p, nil
}

func (p *serverProc) command(cmd string) (string, error) {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return "", fmt.Errorf("model server: %w", err)
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("model server: %w", err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return "", fmt.Errorf("model server: %s", msg)
	}
	return line, nil
}

func (p *serverProc) setLatency(d time.Duration) error {
	_, err := p.command("latency " + d.String())
	return err
}

func (p *serverProc) stats() (serverStats, error) {
	line, err := p.command("stats")
	if err != nil {
		return serverStats{}, err
	}
	var st serverStats
	err = json.Unmarshal([]byte(line), &st)
	return st, err
}

func (p *serverProc) close() {
	p.in.Close()
	p.cmd.Wait()
}
