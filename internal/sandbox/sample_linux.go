package sandbox

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// treeMemory returns the private resident memory (anonymous and shared
// memory, not file pages, which the page cache holds anyway) of the
// processes below pid, pid itself excluded: the init is Hive's, the
// rest is the program's.
func treeMemory(pid int) int64 {
	var total int64
	var walk func(pid int, depth int)
	walk = func(pid int, depth int) {
		if depth > 0 {
			total += privateRSS(pid)
		}
		if depth > 64 {
			return
		}
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			return
		}
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/children")
			if err != nil {
				continue
			}
			for _, f := range bytes.Fields(b) {
				if child, err := strconv.Atoi(string(f)); err == nil {
					walk(child, depth+1)
				}
			}
		}
	}
	walk(pid, 0)
	return total
}

// privateRSS is the resident memory of pid that is not file-backed:
// RssAnon plus RssShmem of /proc/PID/status. Shared anonymous memory
// (Python's mmap.mmap(-1, n), memfd, System V shm) is shmem, and counts:
// the "shared" column of statm would subtract it. A page mapped by two
// processes of the run counts twice, which errs on the safe side.
func privateRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, key := range [][]byte{[]byte("RssAnon:"), []byte("RssShmem:")} {
			if v, ok := bytes.CutPrefix(line, key); ok {
				f := bytes.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(string(f[0]), 10, 64)
					kb += n
				}
			}
		}
	}
	return kb << 10
}

// sampler calls probe every sampleEvery, keeps the peak of the memory it
// returns and calls over once when it says the run is over its limit:
// without a cgroup, probe adds up the memory of the run's process tree;
// with one, it asks whether the kernel killed a process of the run for
// memory, so that the whole run ends then. startSampler launches its
// goroutine; stop ends it and waits.
type sampler struct {
	probe func() (total int64, over bool)
	over  func()

	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex // guards peak
	peak int64
}

func startSampler(probe func() (int64, bool), over func()) *sampler {
	s := &sampler{probe: probe, over: over, done: make(chan struct{})}
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *sampler) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	fired := false
	for {
		total, over := s.probe()
		s.mu.Lock()
		s.peak = max(s.peak, total)
		s.mu.Unlock()
		if over && !fired {
			fired = true
			s.over()
		}
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

// stop ends sampling and returns the peak total seen.
func (s *sampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}
