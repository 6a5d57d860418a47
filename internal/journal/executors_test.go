package journal

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The liveness rule: on this host the pid decides at once (a reaped pid, a
// zombie, a pid reused by a later process are dead; a live one is alive
// however old its beat); on another host the beat's age does.
func TestExecutorDead(t *testing.T) {
	if _, _, err := procStat(os.Getpid()); err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	now := time.Now()
	self := ThisProcess("self")
	if self.PIDStart == "" || self.Host == "" {
		t.Fatalf("ThisProcess = %+v: no pid start time or host", self)
	}

	reaped := exec.Command("true")
	if err := reaped.Run(); err != nil {
		t.Fatal(err)
	}

	// A zombie: a child that exited and that nobody has waited for yet.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, state, err := procStat(zombie.Process.Pid); err == nil && state == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}

	stale, fresh := now.Add(-BeatTimeout-time.Second), now.Add(-time.Second)
	at := func(ex Executor, host string, pid int, start string, beat time.Time) Executor {
		ex.Host, ex.PID, ex.PIDStart, ex.Beat = host, pid, start, beat
		return ex
	}
	for _, c := range []struct {
		name string
		ex   Executor
		dead bool
	}{
		{"this process, stale beat", at(self, self.Host, self.PID, self.PIDStart, stale), false},
		{"this process, start unknown", at(self, self.Host, self.PID, "", stale), false},
		{"same host, reaped pid, fresh beat", at(self, self.Host, reaped.Process.Pid, "1", fresh), true},
		{"same host, zombie, fresh beat", at(self, self.Host, zombie.Process.Pid, "", fresh), true},
		{"same host, pid reused by a later process", at(self, self.Host, self.PID, self.PIDStart+"0", fresh), true},
		{"other host, fresh beat", at(self, "elsewhere", reaped.Process.Pid, "1", fresh), false},
		{"other host, stale beat", at(self, "elsewhere", self.PID, self.PIDStart, stale), true},
	} {
		if got := c.ex.Dead(self.Host, now, BeatTimeout); got != c.dead {
			t.Errorf("%s: Dead = %v, want %v (%+v)", c.name, got, c.dead, c.ex)
		}
	}
}

func TestExecutorRecordsSQLite(t *testing.T) {
	testExecutorRecords(t, filepath.Join(t.TempDir(), "hive.db"))
}

func TestExecutorRecordsPostgres(t *testing.T) {
	testExecutorRecords(t, postgresURL(t))
}

// Records round-trip; a beat replaces the record; forgetting a record
// whose beat moved on since it was read leaves it.
func testExecutorRecords(t *testing.T, url string) {
	ctx := context.Background()
	s := openClosed(t, url)
	a := ThisProcess("hive-a")
	b := Executor{ID: "hive-b", Host: "elsewhere", PID: 42, Started: time.Unix(100, 5), Beat: time.Unix(200, 7)}
	for _, ex := range []Executor{a, b} {
		if err := s.PutExecutor(ctx, ex); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Executor(ctx, "hive-b")
	if err != nil || got.Host != "elsewhere" || got.PID != 42 || !got.Started.Equal(b.Started) || !got.Beat.Equal(b.Beat) {
		t.Fatalf("Executor(hive-b) = %+v, %v; want %+v", got, err, b)
	}
	if _, err := s.Executor(ctx, "hive-c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Executor(hive-c): %v, want ErrNotFound", err)
	}

	seen := b
	b.Beat = time.Unix(300, 0)
	if err := s.PutExecutor(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.ForgetExecutor(ctx, seen); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Executor(ctx, "hive-b"); err != nil || !got.Beat.Equal(b.Beat) {
		t.Fatalf("after forgetting an older beat: %+v, %v; want the record kept with beat %v", got, err, b.Beat)
	}
	if err := s.ForgetExecutor(ctx, b); err != nil {
		t.Fatal(err)
	}
	all, err := s.Executors(ctx)
	if err != nil || len(all) != 1 || all[0].ID != "hive-a" || all[0].PID != a.PID || all[0].PIDStart != a.PIDStart || all[0].Host != a.Host {
		t.Fatalf("Executors = %+v, %v; want only %+v", all, err, a)
	}
}
