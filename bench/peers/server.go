package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hive-swarm/hive/internal/llm"
	"github.com/hive-swarm/hive/internal/llm/llmtest"
)

// The model server: Hive's llmtest OpenAI server, in a process of its own
// so that its CPU is nobody's, answering every implementation by the shape
// of its request. A request that offers fan_out (or Hive's finish) is the
// lead's; one that offers read_file is a worker's. Without a tool result
// in it, it is a first turn: the lead fans out the tasks its task names,
// a worker reads its task's file. With one, it is a last turn: a worker
// reports the value it read (submit, for Hive), and the lead answers with
// the number of right reports it got (finish, for Hive).
//
// The driver steers it over stdin, a command a line, each answered with
// one line on stdout: "latency D" sets every call's latency; "stats"
// returns the [serverStats] since the last "stats" and starts anew.

// serverStats counts a run's calls at the server.
type serverStats struct {
	Calls    int64 `json:"calls"`
	Streamed int64 `json:"streamed"`
	// Unknown counts requests the server could not place, answered with
	// a 400; Wrong counts worker turns whose tool result lacked the
	// task's value.
	Unknown int64 `json:"unknown"`
	Wrong   int64 `json:"wrong"`
	// MaxInFlight is the most requests being answered at once, sampled
	// every millisecond.
	MaxInFlight int64 `json:"max_in_flight"`
	// Where an implementation spends wall time between model calls, each
	// answer taken to end its latency after it arrived: Dispatch from the
	// lead's fan-out to the first worker call; TurnGap from a worker's
	// first answer to its second call (the tool and the bookkeeping
	// between), median and max over the workers; Collect from the last
	// worker answer to the lead's last call. FirstCall is when the
	// lead's first call arrived and LastAnswer when its last was
	// answered, in Unix nanoseconds, to set against the child's clock.
	FirstCall  int64         `json:"first_call_unix_ns"`
	LastAnswer int64         `json:"last_answer_unix_ns"`
	Dispatch   time.Duration `json:"dispatch_ns"`
	TurnGap    time.Duration `json:"turn_gap_ns"`
	TurnGapMax time.Duration `json:"turn_gap_max_ns"`
	Collect    time.Duration `json:"collect_ns"`
}

// The kinds of call, for the gaps.
const (
	leadFirst = iota
	leadLast
	workerFirst
	workerLast
)

type arrival struct {
	kind int
	task string
	at   time.Time // when it arrived
	lat  time.Duration
}

type modelServer struct {
	srv     *llmtest.Server
	latency atomic.Int64 // nanoseconds

	calls, streamed, unknown, wrong, maxIn atomic.Int64

	mu       sync.Mutex
	arrivals []arrival // since the last stats; guarded by mu
}

func (s *modelServer) arrived(kind int, task string, lat time.Duration) {
	a := arrival{kind: kind, task: task, at: time.Now(), lat: lat}
	s.mu.Lock()
	s.arrivals = append(s.arrivals, a)
	s.mu.Unlock()
}

// gaps fills st's gaps from the arrivals since the last stats, and
// forgets them.
func (s *modelServer) gaps(st *serverStats) {
	s.mu.Lock()
	as := s.arrivals
	s.arrivals = nil
	s.mu.Unlock()
	var lead1, lead2, firstWorker, lastWorkerDone time.Time
	first := map[string]time.Time{} // a worker's first answer
	for _, a := range as {
		switch a.kind {
		case leadFirst:
			lead1 = a.at.Add(a.lat)
			st.FirstCall = a.at.UnixNano()
		case leadLast:
			lead2 = a.at
			st.LastAnswer = a.at.Add(a.lat).UnixNano()
		case workerFirst:
			if firstWorker.IsZero() || a.at.Before(firstWorker) {
				firstWorker = a.at
			}
			first[a.task] = a.at.Add(a.lat)
		case workerLast:
			if done := a.at.Add(a.lat); done.After(lastWorkerDone) {
				lastWorkerDone = done
			}
		}
	}
	var turn []time.Duration
	for _, a := range as {
		if t, ok := first[a.task]; ok && a.kind == workerLast {
			turn = append(turn, a.at.Sub(t))
		}
	}
	if !lead1.IsZero() && !firstWorker.IsZero() {
		st.Dispatch = firstWorker.Sub(lead1)
	}
	if !lead2.IsZero() && !lastWorkerDone.IsZero() {
		st.Collect = lead2.Sub(lastWorkerDone)
	}
	if len(turn) > 0 {
		slices.Sort(turn)
		st.TurnGap, st.TurnGapMax = turn[len(turn)/2], turn[len(turn)-1]
	}
}

func newModelServer() *modelServer {
	s := &modelServer{}
	s.srv = llmtest.NewOpenAI(s.answer)
	return s
}

func (s *modelServer) Close() { s.srv.Close() }

// sample records the requests in flight every millisecond until done is
// closed.
func (s *modelServer) sample(done <-chan struct{}) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			in := int64(s.srv.InFlight())
			for {
				m := s.maxIn.Load()
				if in <= m || s.maxIn.CompareAndSwap(m, in) {
					break
				}
			}
		}
	}
}

// stats returns the counts since the last call, and starts anew.
func (s *modelServer) stats() serverStats {
	st := serverStats{
		Calls:       s.calls.Swap(0),
		Streamed:    s.streamed.Swap(0),
		Unknown:     s.unknown.Swap(0),
		Wrong:       s.wrong.Swap(0),
		MaxInFlight: s.maxIn.Swap(0),
	}
	s.gaps(&st)
	return st
}

var (
	leadCount = regexp.MustCompile(`Fan out (\d+) tasks`)
	taskOf    = regexp.MustCompile(`tasks/(t-\d+)\.txt`)
	reportRE  = regexp.MustCompile(`(t-\d+)=([0-9a-f]{8})`)
)

func (s *modelServer) answer(c *llmtest.Call) llmtest.Reply {
	s.calls.Add(1)
	if c.Stream {
		s.streamed.Add(1)
	}
	lat := time.Duration(s.latency.Load())
	hive := slices.Contains(c.Tools, "submit") || slices.Contains(c.Tools, "finish")
	results := toolResults(c)
	switch {
	case slices.Contains(c.Tools, toolFanOut) || slices.Contains(c.Tools, "finish"):
		if results == "" {
			s.arrived(leadFirst, "", lat)
			return s.fanOut(c, hive, lat)
		}
		s.arrived(leadLast, "", lat)
		answer := fmt.Sprintf("%d reports", countReports(results))
		if hive {
			return llmtest.Reply{Latency: lat, ToolCalls: []llmtest.ToolCall{call("finish", map[string]string{"answer": answer})}}
		}
		return llmtest.Reply{Latency: lat, Text: answer}
	case slices.Contains(c.Tools, toolRead):
		m := taskOf.FindStringSubmatch(userText(c))
		if m == nil {
			return s.refuse("a worker request that names no task file")
		}
		name := m[1]
		if results == "" {
			s.arrived(workerFirst, name, lat)
			return llmtest.Reply{Latency: lat, ToolCalls: []llmtest.ToolCall{call(toolRead, readArgs{Path: taskPath(name)})}}
		}
		s.arrived(workerLast, name, lat)
		report := taskReport(name)
		if !strings.Contains(results, report) {
			s.wrong.Add(1)
			report = name + "=missing"
		}
		if hive {
			return llmtest.Reply{Latency: lat, ToolCalls: []llmtest.ToolCall{call("submit", map[string]string{"report": report})}}
		}
		return llmtest.Reply{Latency: lat, Text: report}
	}
	return s.refuse(fmt.Sprintf("a request offering tools %v", c.Tools))
}

// fanOut answers the lead's first turn: the tasks its job names.
func (s *modelServer) fanOut(c *llmtest.Call, hive bool, lat time.Duration) llmtest.Reply {
	m := leadCount.FindStringSubmatch(userText(c))
	if m == nil {
		return s.refuse("a lead request that names no task count")
	}
	var n int
	fmt.Sscan(m[1], &n)
	args := fanOutArgs{Tasks: make([]task, n)}
	for i := range n {
		name := taskName(i)
		args.Tasks[i] = task{Name: name, Instructions: taskInstructions(name)}
	}
	name := toolFanOut
	if hive {
		name = "delegate"
	}
	return llmtest.Reply{Latency: lat, ToolCalls: []llmtest.ToolCall{call(name, args)}}
}

func (s *modelServer) refuse(why string) llmtest.Reply {
	s.unknown.Add(1)
	return llmtest.Reply{Status: 400, ErrorMessage: "the benchmark's server cannot place " + why}
}

func call(name string, args any) llmtest.ToolCall {
	b, _ := json.Marshal(args)
	return llmtest.ToolCall{Name: name, Input: string(b)}
}

// userText is the text of the call's user messages (not tool results).
func userText(c *llmtest.Call) string {
	var b strings.Builder
	for _, m := range c.Messages {
		if m.Role == llm.RoleUser {
			b.WriteString(m.Text())
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// toolResults is the text of the tool results of the call's last user
// message: the reports, in the lead's last turn.
func toolResults(c *llmtest.Call) string {
	var b strings.Builder
	for _, r := range c.ToolResults() {
		b.WriteString(r.Content)
		b.WriteByte('\n')
	}
	return b.String()
}

// countReports counts the tasks whose right value is in s, each once.
func countReports(s string) int {
	seen := map[string]bool{}
	for _, m := range reportRE.FindAllStringSubmatch(s, -1) {
		if m[2] == taskValue(m[1]) {
			seen[m[1]] = true
		}
	}
	return len(seen)
}

// serve runs the server until in ends: it prints its URL, then answers
// the driver's commands.
func serve(in io.Reader, out io.Writer) error {
	s := newModelServer()
	defer s.Close()
	done := make(chan struct{})
	defer close(done)
	go s.sample(done)
	fmt.Fprintln(out, s.srv.URL)
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "latency":
			d, err := time.ParseDuration(arg)
			if err != nil {
				fmt.Fprintf(out, "error %v\n", err)
				continue
			}
			s.latency.Store(int64(d))
			fmt.Fprintln(out, "ok")
		case "stats":
			b, _ := json.Marshal(s.stats())
			fmt.Fprintf(out, "%s\n", b)
		default:
			fmt.Fprintf(out, "error unknown command %q\n", cmd)
		}
	}
	return sc.Err()
}
