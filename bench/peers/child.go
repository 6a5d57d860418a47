package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

// Each implementation runs the job in a process of its own: the driver
// re-executes its own binary (or runs node) with [childEnv] holding a
// [childSpec]. The child prepares everything that is not the job, notes
// its RSS, runs the job once, checks the answer and prints a
// [childResult] with its CPU over the job and its peak RSS; the driver
// reads the child's whole CPU from its rusage when it exits.

// childEnv names the variable that makes the binary a child.
const childEnv = "HIVE_PEERS_CHILD"

// A job is one run of the job: n tasks, at most cap of them at once,
// against the model server at url, the task files under dir.
type job struct {
	N   int    `json:"n"`
	Cap int    `json:"cap"`
	URL string `json:"url"`
	Dir string `json:"dir"`
}

type childSpec struct {
	// Role is "serve" for the model server, "job" for an implementation.
	Role string `json:"role"`
	Impl string `json:"impl,omitempty"`
	job
	// CPUProfile, when set, is where a Go child writes the job's CPU
	// profile; MemProfile where it writes its heap profile once the job
	// is done.
	CPUProfile string `json:"cpuprofile,omitempty"`
	MemProfile string `json:"memprofile,omitempty"`
}

type childResult struct {
	WallNS int64 `json:"wall_ns"`
	// CPUNS is the child's user+system CPU over the job alone, from its
	// own rusage before and after.
	CPUNS       int64 `json:"cpu_ns"`
	RSSBeforeKB int64 `json:"rss_before_kb"`
	// PeakRSSKB is the child's peak RSS (VmHWM) once the job is done.
	// Not rusage's maxrss: Linux carries that over exec from the parent
	// the child was forked from, and the driver's is larger than some
	// children's.
	PeakRSSKB int64 `json:"peak_rss_kb"`
	// GoSysKB is the memory the Go runtime holds from the system once
	// the job is done (runtime.MemStats.Sys; 0 for node): what the peak
	// RSS has beyond it is memory outside Go's heap, such as SQLite's.
	GoSysKB int64 `json:"go_sys_kb,omitempty"`
	// LiveBeforeKB is the Go heap's live bytes just before the job (after
	// a collection), PeakLiveKB the most the collector found live during
	// it (runtime/metrics' /gc/heap/live:bytes, sampled every
	// millisecond): what the job's state took, without the garbage and
	// the collector's headroom that RSS also holds. 0 for node.
	LiveBeforeKB int64  `json:"live_before_kb,omitempty"`
	PeakLiveKB   int64  `json:"peak_live_kb,omitempty"`
	Answer       string `json:"answer"`
	// Start and End are when the job began and ended, in Unix
	// nanoseconds.
	Start int64 `json:"start_unix_ns"`
	End   int64 `json:"end_unix_ns"`
}

// A preparer readies an implementation for one job: it opens clients,
// compiles graphs, starts engines, and returns the job itself, and what
// to close once it is done.
type preparer func(ctx context.Context, j job) (run func(context.Context) (string, error), close func(), err error)

// goImpls are the Go implementations in this binary, by name: all of
// them in the driver's, one in each child's (built with the tags
// peers_solo and peers_NAME, so that a child's memory holds no other
// implementation's packages).
var goImpls = map[string]preparer{}

// childMain runs the child that spec names; it returns the exit code.
func childMain(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", childEnv, err)
		return 2
	}
	var err error
	switch spec.Role {
	case "serve":
		err = serve(os.Stdin, os.Stdout)
	case "job":
		err = runJob(spec)
	default:
		err = fmt.Errorf("unknown role %q", spec.Role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runJob(spec childSpec) error {
	prepare, ok := goImpls[spec.Impl]
	if !ok {
		return fmt.Errorf("no implementation %q", spec.Impl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	run, closeFn, err := prepare(ctx, spec.job)
	if err != nil {
		return fmt.Errorf("%s: prepare: %w", spec.Impl, err)
	}
	defer closeFn()
	rss, err := procStatus("VmRSS")
	if err != nil {
		return err
	}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	runtime.GC()
	live0 := liveHeap()
	stopLive, peakLive := sampleLive()
	cpu0, t0 := cpuTime(), time.Now()
	answer, err := run(ctx)
	t1 := time.Now()
	stopLive()
	wall, cpu := t1.Sub(t0), cpuTime()-cpu0
	if spec.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", spec.Impl, err)
	}
	if spec.MemProfile != "" {
		if err := writeHeapProfile(spec.MemProfile); err != nil {
			return err
		}
	}
	peak, err := procStatus("VmHWM")
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if want := wantAnswer(spec.N); answer != want {
		return fmt.Errorf("%s: answered %q, want %q", spec.Impl, answer, want)
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{WallNS: int64(wall), CPUNS: int64(cpu), RSSBeforeKB: rss, PeakRSSKB: peak, GoSysKB: int64(ms.Sys >> 10),
		LiveBeforeKB: int64(live0 >> 10), PeakLiveKB: int64(*peakLive >> 10), Answer: answer,
		Start: t0.UnixNano(), End: t1.UnixNano()})
}

// liveHeap is the heap's live bytes as the last collection marked them.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// sampleLive samples liveHeap every millisecond until stop is called,
// and keeps the most it saw in *peak (read it after stop).
func sampleLive() (stop func(), peak *uint64) {
	peak = new(uint64)
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, liveHeap())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-ended; *peak = max(*peak, liveHeap()) }, peak
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuTime is the process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a size of /proc/self/status, in KiB (Linux): VmRSS,
// the resident set now, or VmHWM, its peak.
func procStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", field, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(field+":")); ok {
			v = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// pooledClient is the HTTP client every Go peer is given: Go's default
// transport keeps two idle connections a host, so with cap calls in
// flight it would dial anew for most calls. Hive's registry sets the same
// up for itself; the bare loop and the peers get it here.
func pooledClient(cap int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = max(cap, 2)
	return &http.Client{Transport: t}
}
