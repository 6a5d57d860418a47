package eval

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/sandbox"
	"github.com/hive-swarm/hive/internal/suite"
	"github.com/hive-swarm/hive/internal/verify"
)

// Hidden tests are many small programs; starting a sandboxed interpreter
// for each costs more than the tests. So they run in batches: one sandbox
// whose Python driver forks a child per program (isolated from each other
// by the fork, from the host by the sandbox), each with its own time
// limit. A program that breaks the driver only costs a rerun of the rest
// of its batch, one program a sandbox. A program's time is CPU time, which
// a busy machine does not change; one that runs out of wall-clock time
// (three times as much) beside its batch-mates is judged again alone.
const batchDriver = `import os, resource, signal, sys
limit, width = {LIMIT}, {WIDTH}
names = sorted(os.listdir("progs"), key=lambda n: int(n.split(".")[0]))
running = {}

def reap():
    pid, status = os.wait()
    name = running.pop(pid)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # Out of wall-clock time only (its CPU limit is a verdict): perhaps
    # starved by its neighbours on a busy machine.
    slow = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM
    print(name.split(".")[0], "ok" if ok else "timeout" if slow else "fail", flush=True)

for name in names:
    while len(running) >= width:
        reap()
    src = open(os.path.join("progs", name)).read()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        os.dup2(fd, 0); os.dup2(fd, 1); os.dup2(fd, 2)
        # limit seconds of CPU, so that a busy machine does not fail a
        # slow but right answer; three times that of wall clock, for one
        # that sleeps.
        resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))
        signal.alarm(3 * limit)
        try:
            exec(compile(src, "program", "exec"), {"__name__": "__main__"})
        except SystemExit as e:
            os._exit(0 if e.code in (None, 0) else 1)
        except BaseException:
            os._exit(1)
        os._exit(0)
    running[pid] = name
while running:
    reap()
`

const (
	perProgram = 10 * time.Second // each program's CPU time limit: the data README's, which one right answer (gpt-4 on HumanEval/129, 5.3 s) needs
	batchSize  = 64
	batchWidth = 4 // programs running at once in a batch
)

type hiddenJob struct {
	key  [32]byte
	prog string
}

// hiddenProgram returns the hidden-test program for answer, or false when
// the answer holds no code.
func hiddenProgram(p *suite.CodeProblem, answer string) (string, bool) {
	code, ok := verify.ExtractCode(answer)
	if !ok {
		return "", false
	}
	return p.HiddenProgram(p.Complete(code)), true
}

// prefetchHidden runs, in batches, the hidden tests of every program not
// yet judged, and caches the verdicts.
func (ev *Evaluator) prefetchHidden(ctx context.Context, progs []string) error {
	var jobs []hiddenJob
	seen := map[[32]byte]bool{}
	for _, prog := range progs {
		key := sha256.Sum256([]byte(prog))
		if _, ok := ev.hidden.Load(key); ok || seen[key] {
			continue
		}
		seen[key] = true
		jobs = append(jobs, hiddenJob{key, prog})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 2) // two batches at once: the machine's two cores
	for i := 0; i < len(jobs); i += batchSize {
		batch := jobs[i:min(i+batchSize, len(jobs))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := ev.runBatch(ctx, batch); err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// runBatch judges a batch in one sandbox; programs the driver did not
// report on (it was killed) are judged one sandbox each.
func (ev *Evaluator) runBatch(ctx context.Context, batch []hiddenJob) error {
	files := map[string][]byte{}
	for i, j := range batch {
		files[fmt.Sprintf("progs/%d.py", i)] = []byte(j.prog)
	}
	wall := 3*time.Duration(len(batch))*perProgram/batchWidth + 30*time.Second
	driver := strings.NewReplacer("{LIMIT}", strconv.Itoa(int(perProgram/time.Second)), "{WIDTH}", strconv.Itoa(batchWidth)).Replace(batchDriver)
	res, err := ev.Sandbox.Run(ctx, sandbox.Spec{
		Lang: sandbox.Python, Source: driver, Files: files,
		Limits: sandbox.Limits{Wall: wall, CPU: wall},
	})
	if err != nil {
		return err
	}
	done := make([]bool, len(batch))
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	for sc.Scan() {
		idx, verdict, ok := strings.Cut(sc.Text(), " ")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= len(batch) {
			continue
		}
		if verdict == "timeout" && len(batch) > 1 {
			// Slow beside its batch-mates on a busy machine, perhaps:
			// judged again below, alone.
			continue
		}
		done[i] = true
		ev.hidden.Store(batch[i].key, verdict == "ok")
	}
	for i, j := range batch {
		if done[i] {
			continue
		}
		if len(batch) == 1 {
			// The program stopped the driver itself: that is a failure.
			ev.hidden.Store(j.key, false)
			continue
		}
		// It ran out of time beside others, or its batch's driver was
		// stopped (by some program of the batch): judge it alone.
		if err := ev.runBatch(ctx, []hiddenJob{j}); err != nil {
			return err
		}
	}
	return nil
}
