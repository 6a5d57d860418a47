package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hive-swarm/hive/internal/llm/llmtest"
	"github.com/hive-swarm/hive/internal/swarm"
)

// loadFigures are what one load run measured.
type loadFigures struct {
	events          int           // events of the run
	delivered       int           // events received over all clients
	p50, p99, max   time.Duration // event time → arrival at a client
	heapInuse, sys  uint64        // peaks, sampled
	wall            time.Duration // run start to the last client's end
	workersFinished int
}

// runLoad runs one swarm of workers (max 200 in flight, 20 ms a call)
// followed by clients event streams, all connected before the run begins.
func runLoad(t *testing.T, workers, clients int) loadFigures {
	gate := make(chan struct{})
	var leadCalls atomic.Int64
	h := func(c *llmtest.Call) llmtest.Reply {
		if !isLead(c) {
			return llmtest.Reply{Latency: 20 * time.Millisecond, ToolCalls: []llmtest.ToolCall{toolCall("submit", map[string]any{"report": "ok"})}}
		}
		if leadCalls.Add(1) == 1 {
			<-gate
			tasks := make([]map[string]string, workers)
			for i := range tasks {
				tasks[i] = map[string]string{"name": fmt.Sprintf("t-%d", i), "instructions": fmt.Sprintf("Say %d.", i)}
			}
			return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("delegate", map[string]any{"tasks": tasks})}}
		}
		return llmtest.Reply{ToolCalls: []llmtest.ToolCall{toolCall("finish", map[string]any{"answer": "all done"})}}
	}
	e := newTestEnv(t, h)
	// The clients share the one token; the per-token caps (64 streams) are
	// tested elsewhere, this measures a server allowed to serve them all.
	e.server.Limits.StreamsPerToken, e.server.Limits.RequestsPerToken = clients, clients+16
	var opened sync.Once
	openGate := func() { opened.Do(func() { close(gate) }) }
	defer openGate()

	var out struct{ ID string }
	e.do("POST", "/v1/runs", testToken, map[string]any{"task": "load", "budget_usd": json.Number("0"), "max_workers": 200, "max_depth": 1}, &out)
	if out.ID == "" {
		t.Fatal("no run")
	}
	url := e.srv.URL + "/v1/runs/" + out.ID + "/events"

	// Sample the process's memory while it runs.
	var fig loadFigures
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			fig.heapInuse = max(fig.heapInuse, ms.HeapInuse)
			fig.sys = max(fig.sys, ms.Sys)
			select {
			case <-tick.C:
			case <-stopSampling:
				return
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var ready sync.WaitGroup
	ready.Add(clients)
	lat := make([][]time.Duration, clients)
	counts := make([]int, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			l, n, err := lightClient(ctx, url, ready.Done)
			if err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
				return
			}
			lat[i], counts[i] = l, n
		})
	}
	ready.Wait()
	start := time.Now()
	openGate()
	wg.Wait()
	if _, err := e.engine.Wait(ctx, out.ID); err != nil {
		t.Fatal(err)
	}
	fig.wall = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e.waitStatus(out.ID, swarm.StatusDone)
	for _, n := range got.Nodes {
		if n.Role == swarm.RoleWorker && n.Status == swarm.StatusDone {
			fig.workersFinished++
		}
	}
	if clients == 0 {
		return fig
	}
	var all []time.Duration
	for i := range clients {
		all = append(all, lat[i]...)
		fig.delivered += counts[i]
		if counts[i] != counts[0] {
			t.Fatalf("client %d got %d events, client 0 %d", i, counts[i], counts[0])
		}
	}
	fig.events = counts[0]
	slices.Sort(all)
	fig.p50, fig.p99, fig.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	return fig
}

func TestLoadEventStreams(t *testing.T) {
	// The full size takes ~25 s on 2 cores, several times that with the
	// race detector: -short and -race run a smaller swarm.
	workers, clients := 1000, 200
	if testing.Short() || raceEnabled {
		workers, clients = 100, 50
	}
	base := runLoad(t, workers, 0)
	t.Logf("baseline, no client: %d workers ran in %v; peak HeapInuse %.1f MiB, Sys %.1f MiB",
		workers, base.wall.Round(time.Millisecond), float64(base.heapInuse)/(1<<20), float64(base.sys)/(1<<20))
	fig := runLoad(t, workers, clients)
	if fig.workersFinished != workers {
		t.Fatalf("%d of %d workers finished", fig.workersFinished, workers)
	}
	t.Logf("%d workers, %d SSE clients: %d events each, %d delivered in %v; latency event→client p50 %v p99 %v max %v; peak HeapInuse %.1f MiB, Sys %.1f MiB (race detector: %v)",
		workers, clients, fig.events, fig.delivered, fig.wall.Round(time.Millisecond),
		fig.p50.Round(10*time.Microsecond), fig.p99.Round(10*time.Microsecond), fig.max.Round(time.Millisecond),
		float64(fig.heapInuse)/(1<<20), float64(fig.sys)/(1<<20), raceEnabled)
}

// lightClient follows an event stream as cheaply as a test can: it
// checks ids are 1, 2, 3, … and that the stream ends with run_finished,
// decodes only each event's time, and returns the latencies of the
// events after the first (published before the clients connected).
// connected is called once the first event arrived.
func lightClient(ctx context.Context, url string, connected func()) ([]time.Duration, int, error) {
	once := sync.OnceFunc(connected)
	defer once()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var lat []time.Duration
	var n int64
	var typ string
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return lat, int(n), fmt.Errorf("stream ended after %d events without run_finished: %v", n, err)
		}
		now := time.Now()
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			id, _ := strconv.ParseInt(string(bytes.TrimSpace(line[4:])), 10, 64)
			if id != n+1 {
				return lat, int(n), fmt.Errorf("event %d after %d", id, n)
			}
			n = id
			if n == 1 {
				once()
			}
		case bytes.HasPrefix(line, []byte("event: ")):
			typ = string(bytes.TrimSpace(line[7:]))
		case bytes.HasPrefix(line, []byte("data: ")):
			// "time" follows "seq" and "run_id" in every event.
			i := bytes.Index(line, []byte(`"time":"`))
			if i < 0 {
				return lat, int(n), fmt.Errorf("event %d has no time", n)
			}
			rest := line[i+8:]
			j := bytes.IndexByte(rest, '"')
			ts, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
			if err != nil {
				return lat, int(n), err
			}
			if n > 1 {
				lat = append(lat, now.Sub(ts))
			}
			if typ == string(swarm.EventRunFinished) {
				return lat, int(n), nil
			}
		}
	}
}
