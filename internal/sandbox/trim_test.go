package sandbox

import "testing"

func TestTrimGoTrace(t *testing.T) {
	for in, want := range map[string]string{
		"runtime: out of memory: cannot allocate\nfatal error: out of memory\n\ngoroutine 1 [running]:\nmain.main()\n": "runtime: out of memory: cannot allocate\nfatal error: out of memory\n[the Go runtime's trace is cut]\n",
		"fatal error: too many address space collisions for -race mode\n\nruntime stack:\nruntime.throw()\n":           "fatal error: too many address space collisions for -race mode\n[the Go runtime's trace is cut]\n",
		"a script's own error\n":     "a script's own error\n",
		"fatal error: out of memory": "fatal error: out of memory",
	} {
		if got := string(trimGoTrace([]byte(in))); got != want {
			t.Errorf("trimGoTrace(%q) = %q, want %q", in, got, want)
		}
	}
}
