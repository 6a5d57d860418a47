package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The flood measurement: a server in a child process (this test binary,
// running TestFloodServer) is flooded by this one, which reads the child's
// open sockets and resident memory from /proc. It takes a minute, so it
// runs only with HIVE_FLOOD=1:
//
//	HIVE_FLOOD=1 go test -run 'TestFlood$' -v ./internal/server

// TestFloodServer is the child: a server as hive serve runs it, over a
// run that stays running, until its standard input closes.
func TestFloodServer(t *testing.T) {
	if os.Getenv("HIVE_FLOOD_SERVER") == "" {
		t.Skip("the child of TestFlood")
	}
	sc := &script{n: 1}
	sc.slow.Store(true)
	e := newTestEnv(t, sc.handle)
	e.serveLimited(nil)
	id := e.startRun("a SLOW job")
	fmt.Printf("flood: %s %s\n", e.srv.URL, id)
	io.Copy(io.Discard, os.Stdin)
	e.srv.CloseClientConnections()
}

// procStat reads the child's open sockets, resident memory and its peak.
func procStat(t *testing.T, pid int) (sockets int, rss, hwm string) {
	dir := fmt.Sprintf("/proc/%d", pid)
	fds, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	return sockets, rss, hwm
}

func TestFlood(t *testing.T) {
	if os.Getenv("HIVE_FLOOD") == "" {
		t.Skip("set HIVE_FLOOD=1 to measure the server under connection floods (a minute)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodServer$")
	cmd.Env = append(os.Environ(), "HIVE_FLOOD_SERVER=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	var base, id string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "flood:" {
			base, id = f[1], f[2]
			break
		}
	}
	if base == "" {
		t.Fatal("the child printed no address")
	}
	go io.Copy(io.Discard, stdout)
	addr := strings.TrimPrefix(base, "http://")
	pid := cmd.Process.Pid
	time.Sleep(time.Second)
	s, rss, _ := procStat(t, pid)
	t.Logf("idle: %d sockets, RSS %s", s, rss)

	// flood opens n connections, 50 at a time, each sending request and
	// reading the answer's head, and keeps them open.
	flood := func(name string, n int, request string) {
		var mu sync.Mutex
		var conns []net.Conn
		statuses := map[int]int{}
		var failed atomic.Int64
		var wg sync.WaitGroup
		sem := make(chan struct{}, 50)
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					return
				}
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
				io.WriteString(conn, request)
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					failed.Add(1)
					return
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		time.Sleep(2 * time.Second)
		// Which the server has closed.
		closed := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			buf := make([]byte, 64<<10)
			for {
				_, err := c.Read(buf)
				if err == nil {
					continue
				}
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed++
				}
				break
			}
		}
		s, rss, hwm := procStat(t, pid)
		t.Logf("%s: %d connections, answers %v, %d without an answer; the server closed %d; server: %d sockets, RSS %s (peak %s)",
			name, n, statuses, failed.Load(), closed, s, rss, hwm)
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(2 * time.Second)
	}
	flood("1,500 unauthenticated keep-alive", 1500, "GET /v1/runs HTTP/1.1\r\nHost: hive\r\n\r\n")
	flood("3,000 authenticated event streams", 3000, "GET /v1/runs/"+id+"/events HTTP/1.1\r\nHost: hive\r\nAuthorization: Bearer "+testToken+"\r\n\r\n")
	s, rss, _ = procStat(t, pid)
	t.Logf("after: %d sockets, RSS %s", s, rss)
}
