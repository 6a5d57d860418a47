package swarm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/journal"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/provider"
)

// The crash test runs the engine in a child process (this test binary,
// re-executed) and kills it with SIGKILL at random moments.
const (
	crashChildEnv = "HIVE_SWARM_CRASH_CHILD" // db path
	crashURLEnv   = "HIVE_SWARM_CRASH_URL"   // model server base URL
	crashRunEnv   = "HIVE_SWARM_CRASH_RUN"   // run id to resume; empty: start one
	crashWorkers  = 300
)

func crashSpec() Spec {
	return Spec{Task: "crash test", Lead: "lead", Tiers: []string{"cheap"}, BudgetUSD: 1e12, MaxWorkers: 40}
}

// crashChild starts or resumes the run and prints "RUN id" then "ANSWER
// text" on stdout.
func crashChild() int {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := journal.Open(ctx, os.Getenv(crashChildEnv), log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer store.Close()
	reg := provider.NewRegistry(testConfig(os.Getenv(crashURLEnv)), func(string) string { return "" }, log)
	e, err := New(ctx, store, reg, log, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close(ctx)
	id := os.Getenv(crashRunEnv)
	if id == "" {
		id, err = e.Start(ctx, crashSpec())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if _, err := e.Resume(ctx, id); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("RUN %s\n", id)
	res, err := e.Wait(ctx, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if res.Status != StatusDone {
		fmt.Fprintf(os.Stderr, "run %s: %s\n", res.Status, res.Error)
	}
	fmt.Printf("ANSWER %s\n", res.Answer)
	return 0
}

// crashServer scripts a lead that delegates crashWorkers tasks and
// answers with a digest of their reports, and records every request's
// identity with the times it was in the handler.
type crashServer struct {
	mu     sync.Mutex
	sends  map[string][]span // call identity → each time it was served
	server *llmtest.Server
}

type span struct{ start, end time.Time }

// served is the number of calls answered so far.
func (cs *crashServer) served() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	n := 0
	for _, spans := range cs.sends {
		n += len(spans)
	}
	return n
}

func callKey(c *llmtest.Call) string {
	if isLead(c) {
		return fmt.Sprintf("lead/%d", turns(c))
	}
	return fmt.Sprintf("%s/%d", taskName(c), turns(c))
}

func newCrashServer() *crashServer {
	cs := &crashServer{sends: map[string][]span{}}
	cs.server = llmtest.NewOpenAI(func(c *llmtest.Call) llmtest.Reply {
		key := callKey(c)
		start := time.Now()
		rep := crashReply(c)
		// Latency inside the handler, so that "in the handler" is "in flight".
		h := fnv.New32a()
		h.Write([]byte(key))
		time.Sleep(time.Duration(20+h.Sum32()%120) * time.Millisecond)
		cs.mu.Lock()
		cs.sends[key] = append(cs.sends[key], span{start, time.Now()})
		cs.mu.Unlock()
		return rep
	})
	return cs
}

func crashReply(c *llmtest.Call) llmtest.Reply {
	if !isLead(c) {
		return submit("report " + taskName(c))
	}
	if turns(c) == 0 {
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", delegateArgs{Tasks: tasks(crashWorkers, "job")})}}
	}
	var rs []string
	for _, r := range reports(c) {
		rs = append(rs, string(r.Status)+":"+r.Report)
	}
	slices.Sort(rs)
	sum := sha256.Sum256([]byte(strings.Join(rs, "\n")))
	return finish(fmt.Sprintf("%d reports, digest %s", len(rs), hex.EncodeToString(sum[:8])))
}

// child starts the engine process; run is "" to start a new run.
func startChild(t *testing.T, db, url, run string) (*exec.Cmd, *bufio.Scanner) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+db, crashURLEnv+"="+url, crashRunEnv+"="+run)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(out)
}

func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs a child process through 10 kills")
	}
	// Each life is also cut after 25 answered calls, so that no life can
	// finish the run before its kill however fast the machine: 10 × 25 is
	// less than the run's calls.
	testCrashResume(t, func(t *testing.T, name string) string {
		return filepath.Join(t.TempDir(), name+".db")
	}, 10, 25)
}

// testCrashResume runs the crash test on journals that newDB returns (a
// fresh, empty one each call), killing the child process kills times, each
// after a random 150-850 ms or, if perLife > 0, once perLife calls were
// answered in that life, whichever comes first.
func testCrashResume(t *testing.T, newDB func(t *testing.T, name string) string, kills, perLife int) {
	// An uninterrupted run, for the answer to compare with.
	ref := newCrashServer()
	defer ref.server.Close()
	cmd, sc := startChild(t, newDB(t, "ref"), ref.server.URL+"/v1", "")
	want := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ANSWER "); ok {
			want = a
		}
	}
	if err := cmd.Wait(); err != nil || !strings.HasPrefix(want, fmt.Sprintf("%d reports", crashWorkers)) {
		t.Fatalf("uninterrupted run: %v, answer %q", err, want)
	}

	cs := newCrashServer()
	defer cs.server.Close()
	db := newDB(t, "crash")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	runID := ""
	var killed []time.Time
	answer := ""
	for life := 0; ; life++ {
		cmd, sc := startChild(t, db, cs.server.URL+"/v1", runID)
		lines := make(chan string, 4)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		if runID == "" {
			l := <-lines
			id, ok := strings.CutPrefix(l, "RUN ")
			if !ok {
				t.Fatalf("child said %q", l)
			}
			runID = id
		}
		if life < kills {
			deadline := time.Now().Add(time.Duration(150+rng.IntN(700)) * time.Millisecond)
			for start := cs.served(); time.Now().Before(deadline) && (perLife == 0 || cs.served()-start < perLife); {
				time.Sleep(5 * time.Millisecond)
			}
			if cmd.Process.Signal(syscall.SIGKILL) == nil {
				killed = append(killed, time.Now())
			}
			cmd.Wait()
			for l := range lines {
				if strings.HasPrefix(l, "ANSWER ") {
					t.Fatalf("life %d finished the run before it was killed", life)
				}
			}
			continue
		}
		for l := range lines {
			if a, ok := strings.CutPrefix(l, "ANSWER "); ok {
				answer = a
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("last life: %v", err)
		}
		break
	}
	if answer != want {
		t.Fatalf("after %d kills the answer is %q, want %q", len(killed), answer, want)
	}

	// No finished call was sent twice; count those in flight at a kill.
	cs.mu.Lock()
	defer cs.mu.Unlock()
	total, again, inFlight, late := 0, 0, 0, 0
	for key, spans := range cs.sends {
		total += len(spans)
		for i := 1; i < len(spans); i++ {
			again++
			prev := spans[i-1]
			// The earlier send must have been cut by a kill: in the
			// handler at the kill, or answered just before it, before the
			// answer could be journaled.
			ok := false
			for _, k := range killed {
				// A request sent just before a kill reaches the handler
				// just after it: still in flight at the kill.
				if k.After(prev.start.Add(-200*time.Millisecond)) && k.Before(spans[i].start) {
					if k.Before(prev.end) {
						inFlight++
						ok = true
					} else if k.Sub(prev.end) < time.Second {
						late++
						ok = true
					}
					break
				}
			}
			if !ok {
				t.Errorf("call %s was sent again after it had finished (sends %v, kills %v)", key, spans, killed)
			}
		}
	}
	t.Logf("%d kills; %d requests for %d distinct calls; %d sent again: %d in flight at a kill, %d answered within 1 s before a kill", len(killed), total, len(cs.sends), again, inFlight, late)
	if len(cs.sends) != crashWorkers+2 {
		t.Errorf("%d distinct calls, want %d", len(cs.sends), crashWorkers+2)
	}
}
