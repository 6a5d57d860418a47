package sandbox

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
	"strings"
	"sync"
	"time"
)

// A sandbox takes two starts of this binary (the init and the exec stage)
// before the program's own: tens of milliseconds for a binary the size of
// Hive's. A Sandbox therefore keeps a few started ahead of need, each
// with its namespaces made, its root built and its exec stage waiting,
// and gives each run one of them; a run whose kind finds none ready
// starts one the same way and uses it at once. Every run still has a
// sandbox to itself, used once: nothing of one run is there for the next.
//
// Sandboxes are kept per set of host paths bound into the root, the one
// thing of a run the root is built from (the run's files, sizes and
// limits come when it is taken).

// warmEntry is one started sandbox, waiting for its run.
type warmEntry struct {
	cmd    *exec.Cmd
	tmp    string     // host dir holding the root's mount point
	cg     *cgroupRun // nil without cgroups
	job    *os.File   // the init's jobFD: the run, then EOF
	stdin  *os.File   // the program's stdin
	rep    *bufio.Reader
	repf   *os.File
	stdout *switchWriter
	stderr *switchWriter
}

// warmPool holds the started sandboxes of a [Sandbox].
type warmPool struct {
	mu       sync.Mutex // guards the fields below
	idle     map[string][]*warmEntry
	starting map[string]int
	closed   bool
	wg       sync.WaitGroup // the refills in progress
}

// warmKey is the key of a set of binds.
func warmKey(binds []string) string { return strings.Join(binds, "\x00") }

// take returns a started sandbox whose root binds binds: a warm one, or
// one started now.
func (s *Sandbox) take(binds []string) (*warmEntry, error) {
	p, key := &s.pool, warmKey(binds)
	p.mu.Lock()
	var e *warmEntry
	if n := len(p.idle[key]); n > 0 {
		e = p.idle[key][n-1]
		p.idle[key] = p.idle[key][:n-1]
	}
	p.mu.Unlock()
	if e != nil {
		return e, nil
	}
	return s.startEntry(binds)
}

// replenish starts, in the background, the sandboxes binds needs to have
// s.cfg.Warm ready. It is called as a run ends, not as it starts: two
// starts of this binary take about as much CPU as a short program, and on
// a small machine they would slow the run they were started beside.
func (s *Sandbox) replenish(binds []string) {
	p, key := &s.pool, warmKey(binds)
	p.mu.Lock()
	refills := 0
	if !p.closed {
		if p.starting == nil {
			p.starting, p.idle = map[string]int{}, map[string][]*warmEntry{}
		}
		refills = max(s.warm-len(p.idle[key])-p.starting[key], 0)
		p.starting[key] += refills
		p.wg.Add(refills)
	}
	p.mu.Unlock()
	for range refills {
		go s.refill(key, binds)
	}
}

// refill starts one sandbox and keeps it ready, unless s was closed or
// has enough meanwhile.
func (s *Sandbox) refill(key string, binds []string) {
	p := &s.pool
	defer p.wg.Done()
	e, err := s.startEntry(binds)
	p.mu.Lock()
	p.starting[key]--
	if err != nil || p.closed || len(p.idle[key]) >= s.warm {
		p.mu.Unlock()
		if err != nil {
			s.log.Debug("sandbox: a warm sandbox did not start", "err", err)
			return
		}
		e.discard()
		return
	}
	p.idle[key] = append(p.idle[key], e)
	p.mu.Unlock()
}

// Close stops the sandboxes s keeps ready and waits for those starting.
// Runs in progress are not affected; runs after Close start their
// sandbox when they need it. Close is safe to call more than once.
func (s *Sandbox) Close() error {
	p := &s.pool
	p.mu.Lock()
	p.closed = true
	var idle []*warmEntry
	for k, es := range p.idle {
		idle = append(idle, es...)
		delete(p.idle, k)
	}
	p.mu.Unlock()
	for _, e := range idle {
		e.discard()
	}
	p.wg.Wait()
	return nil
}

// warmPids returns the host pids of the sandboxes s keeps ready (tests).
func (s *Sandbox) warmPids() []int {
	p := &s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, es := range p.idle {
		for _, e := range es {
			out = append(out, e.cmd.Process.Pid)
		}
	}
	return out
}

// startEntry starts a sandbox whose root binds binds, and returns it once
// its root is built and its exec stage is waiting for the run.
func (s *Sandbox) startEntry(binds []string) (_ *warmEntry, err error) {
	e := &warmEntry{stdout: newSwitchWriter(), stderr: newSwitchWriter()}
	var closeOnErr []*os.File
	defer func() {
		for _, f := range closeOnErr {
			f.Close()
		}
		if err != nil {
			e.discard()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "hive-sandbox-"); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cfg := &initConfig{Root: filepath.Join(e.tmp, "root"), Binds: binds}
	if err := os.Mkdir(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	root := os.Geteuid() == 0
	if root {
		cfg.UID, cfg.GID, cfg.Groups = inNSUID, inNSUID, true
	}
	if s.cgroup != nil {
		// The run's own limits are set when it is taken (setLimits).
		if e.cg, err = s.cgroup.start(s.limits, initThreads+goThreads); err != nil {
			s.log.Warn("sandbox: cgroup limits not applied; sampling memory", "err", err)
			e.cg, err = nil, nil
		}
	}
	cfg.Hold = e.cg != nil && !e.cg.v2
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{"hive-sandbox-" + stageInit},
		Env:  []string{stageEnv + "=" + stageInit, configEnv + "=" + string(b), stageGORACE},
	}
	cmd.SysProcAttr = namespaceAttr(root)
	if e.cg != nil && e.cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, e.cg.fd()
	}
	cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
	cmd.WaitDelay = 2 * time.Second
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err == nil {
			closeOnErr = append(closeOnErr, r, w)
		}
		return r, w, err
	}
	var inR, jobR, repW, holdR, holdW *os.File
	if inR, e.stdin, err = pipe(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if jobR, e.job, err = pipe(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if e.repf, repW, err = pipe(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd.Stdin = inR
	cmd.ExtraFiles = []*os.File{repW, jobR}
	if cfg.Hold {
		if holdR, holdW, err = pipe(); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, holdR)
	}
	err = cmd.Start()
	// The child's ends, and from here e owns its own.
	inR.Close()
	jobR.Close()
	repW.Close()
	if holdR != nil {
		holdR.Close()
	}
	closeOnErr = nil
	if holdW != nil {
		defer holdW.Close()
	}
	if err != nil {
		e.stdin.Close()
		e.job.Close()
		e.repf.Close()
		e.stdin, e.job, e.repf = nil, nil, nil
		return nil, s.startError(err)
	}
	e.cmd = cmd
	if cfg.Hold {
		if err := e.cg.attach(cmd.Process.Pid); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		holdW.Close()
	}
	e.rep = bufio.NewReader(e.repf)
	line, err := e.rep.ReadBytes('\n')
	var r report
	if err == nil {
		err = json.Unmarshal(line, &r)
	}
	switch {
	case err == nil && r.Error != "":
		return nil, setupError(r.Error)
	case err != nil || !r.Ready:
		e.discard()
		return nil, fmt.Errorf("sandbox: the init did not start (%v): %s", err, bytes.TrimSpace(e.stderr.early()))
	}
	return e, nil
}

// discard stops e's processes, if they run, and removes what it made.
func (e *warmEntry) discard() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
	for _, f := range []*os.File{e.job, e.stdin, e.repf} {
		if f != nil {
			f.Close()
		}
	}
	e.job, e.stdin, e.repf = nil, nil, nil
	e.cleanup()
}

// cleanup removes e's cgroups and temporary dir, once its processes are
// gone.
func (e *warmEntry) cleanup() {
	if e.cg != nil {
		e.cg.close()
		e.cg = nil
	}
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
		e.tmp = ""
	}
}

// runIsolated runs spec in a sandbox of its own.
func (s *Sandbox) runIsolated(ctx context.Context, spec Spec) (*Result, error) {
	cfg, err := s.runConfig(spec, "/box", "/tmp")
	if err != nil {
		return nil, err
	}
	cfg.Files = map[string][]byte{}
	if spec.Lang != Exec {
		cfg.Files[mainFile(spec.Lang)] = []byte(spec.Source)
	}
	for k, v := range spec.Files {
		cfg.Files[k] = v
	}
	job, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	e, err := s.take(cfg.Binds)
	defer s.replenish(cfg.Binds)
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	extra := initThreads
	if cfg.Program != "" {
		extra += goThreads
	}
	memMode := MemorySampled
	if e.cg != nil {
		if err := e.cg.setLimits(spec.Limits, extra); err != nil {
			e.discard()
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		memMode = e.cg.mode()
	}
	k := &killer{}
	stdout := newCapped(spec.Limits.Output, func() { k.kill(OutputLimit) })
	stderr := newCapped(spec.Limits.Output, func() { k.kill(OutputLimit) })
	e.stdout.set(stdout)
	e.stderr.set(stderr)
	cmd := e.cmd

	start := time.Now()
	k.set(cmd.Process, false)
	wall := time.AfterFunc(spec.Limits.Wall, func() { k.kill(WallTimeout) })
	stop := context.AfterFunc(ctx, func() { k.kill(Canceled) })
	var smp *sampler
	switch {
	case memMode == MemorySampled:
		pid, limit := cmd.Process.Pid, spec.Limits.Memory
		smp = startSampler(func() (int64, bool) { t := treeMemory(pid); return t, t > limit }, func() { k.kill(MemoryLimit) })
	case e.cg != nil:
		smp = startSampler(func() (int64, bool) { return 0, e.cg.oomKilled() }, func() { k.kill(MemoryLimit) })
	}
	// The run, then its stdin. A write that fails means the sandbox
	// died; its end says why below.
	_, jobErr := e.job.Write(job)
	e.job.Close()
	e.job = nil
	var fed sync.WaitGroup
	fed.Go(func() {
		if jobErr == nil && len(spec.Stdin) > 0 {
			e.stdin.Write(spec.Stdin)
		}
		e.stdin.Close()
	})
	waitErr := cmd.Wait()
	elapsed := time.Since(start)
	wall.Stop()
	stop()
	var sampled int64
	if smp != nil {
		sampled = smp.stop()
	}
	k.stop()
	fed.Wait()
	e.cmd, e.stdin = nil, nil
	reports, err := readReports(e.rep)
	e.repf.Close()
	e.repf = nil
	if err != nil {
		return nil, err
	}
	if jobErr != nil && k.reason() == "" && len(reports) == 0 {
		out, _ := stderr.result()
		return nil, fmt.Errorf("sandbox: the sandbox ended before its run (%v): %s", cmd.ProcessState, bytes.TrimSpace(out))
	}
	return collect(spec, outcome{state: cmd.ProcessState, waitErr: waitErr, elapsed: elapsed, stdout: stdout, stderr: stderr,
		reports: reports, killed: k.reason(), isolated: true, memMode: memMode, cg: e.cg, sampled: sampled})
}

// switchWriter passes what it is written to the writer set last; until
// one is set, it keeps the first earlyMax bytes (a stage's complaint
// before there is a run).
type switchWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

const earlyMax = 4 << 10

func newSwitchWriter() *switchWriter { return &switchWriter{} }

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	w := s.w
	if w == nil {
		s.buf = append(s.buf, p[:min(len(p), earlyMax-len(s.buf))]...)
	}
	s.mu.Unlock()
	if w == nil {
		return len(p), nil
	}
	return w.Write(p)
}

func (s *switchWriter) early() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf)
}
