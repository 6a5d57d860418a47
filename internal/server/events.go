package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hive-swarm/hive/internal/swarm"
)

// events streams a run's events as Server-Sent Events, from the seq after
// Last-Event-ID (or ?after=N), and ends after run_finished.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	jr, ok := s.run(w, r)
	if !ok {
		return
	}
	var after int64
	if v := firstNonEmpty(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")); v != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "Last-Event-ID and after take an event seq (a number)")
			return
		}
		after = n
	}
	ctx, cancel := context.WithCancel(r.Context())
	events := s.engine.Watch(ctx, jr.ID, after)
	defer func() {
		// Stop the watcher and wait for it: nothing outlives the request.
		cancel()
		for range events {
		}
	}()

	// A run that ended before the client's last event has nothing more.
	if swarm.Status(jr.Status).Final() {
		if last, err := s.store.LastSeq(ctx, jr.ID); err == nil && last <= after {
			w.WriteHeader(http.StatusNoContent) // EventSource stops reconnecting on 204
			return
		}
	}

	if !s.streams(r).take(s.Limits.StreamsPerToken) {
		tooMany(w, "event streams", s.Limits.StreamsPerToken)
		return
	}
	defer s.streams(r).put()
	st, err := s.startStream(w)
	if err != nil {
		return
	}
	ping := time.NewTicker(s.PingInterval)
	defer ping.Stop()
	var buf []byte
	for {
		select {
		case ev, open := <-events:
			if !open {
				return
			}
			data, err := s.encoded.encode(ev)
			if err != nil {
				s.log.Error("encode event", "run", jr.ID, "seq", ev.Seq, "err", err)
				return
			}
			buf = append(buf[:0], "id: "...)
			buf = strconv.AppendInt(buf, ev.Seq, 10)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, ev.Type...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, data...)
			buf = append(buf, "\n\n"...)
			if st.write(buf) != nil {
				return
			}
			if ev.Type == swarm.EventRunFinished {
				st.flush()
				return
			}
			// Send what has queued up with this event in one flush.
			if len(events) == 0 && st.flush() != nil {
				return
			}
		case <-ping.C:
			if st.send([]byte(": ping\n\n")) != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// eventCache holds the JSON of recent events, so that an event streamed to
// many clients is encoded once: a ring indexed by seq, each slot checked
// against its run and seq. An event is immutable once published.
type eventCache struct {
	mu    sync.Mutex
	slots [4096]cachedEvent // guarded by mu
}

type cachedEvent struct {
	run  string
	seq  int64
	data []byte
}

func (c *eventCache) encode(ev swarm.Event) ([]byte, error) {
	i := uint64(ev.Seq) % uint64(len(c.slots))
	c.mu.Lock()
	e := c.slots[i]
	c.mu.Unlock()
	if e.seq == ev.Seq && e.run == ev.RunID && e.data != nil {
		return e.data, nil
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.slots[i] = cachedEvent{run: ev.RunID, seq: ev.Seq, data: data}
	c.mu.Unlock()
	return data, nil
}
