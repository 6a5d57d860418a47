package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
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
}

type modelServer struct {
	srv     *llmtest.Server
	latency atomic.Int64 // nanoseconds

	calls, streamed, unknown, wrong, maxIn atomic.Int64
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
	return serverStats{
		Calls:       s.calls.Swap(0),
		Streamed:    s.streamed.Swap(0),
		Unknown:     s.unknown.Swap(0),
		Wrong:       s.wrong.Swap(0),
		MaxInFlight: s.maxIn.Swap(0),
	}
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
			return s.fanOut(c, hive, lat)
		}
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
			return llmtest.Reply{Latency: lat, ToolCalls: []llmtest.ToolCall{call(toolRead, readArgs{Path: taskPath(name)})}}
		}
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
