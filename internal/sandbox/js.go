package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// jsMaxHeap caps the heap growth a JavaScript program may cause: it runs
// inside the host process, so the guard is tighter than Limits.Memory.
const jsMaxHeap = 256 << 20

// runJS runs a JavaScript program in goja, in-process. The program sees
// only the language itself, console.log/error (into capped stdout and
// stderr) and a global string stdin: no require, no file system, no
// network. It is interrupted at the wall limit (or the CPU limit, if
// smaller: the program is single-threaded), when the context ends, when
// its output passes the cap, and when the process heap grows by more than
// min(Limits.Memory, 256 MiB) while it runs. The heap guard is
// approximate: it reads the whole process's heap, so concurrent work
// counts too. CPU time is not measured.
func runJS(ctx context.Context, spec Spec) (*Result, error) {
	vm := goja.New()
	vm.SetMaxCallStackSize(10000)
	var once sync.Once
	var why Reason
	stopWith := func(r Reason) {
		once.Do(func() { why = r; vm.Interrupt(r) })
	}
	stdout := newCapped(spec.Limits.Output, func() { stopWith(OutputLimit) })
	stderr := newCapped(spec.Limits.Output, func() { stopWith(OutputLimit) })
	console := vm.NewObject()
	for name, w := range map[string]*capped{"log": stdout, "info": stdout, "error": stderr, "warn": stderr} {
		if err := console.Set(name, jsPrinter(vm, w)); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := vm.Set("console", console); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := vm.Set("stdin", string(spec.Stdin)); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}

	limit, timeReason := spec.Limits.Wall, WallTimeout
	if spec.Limits.CPU < limit {
		limit, timeReason = spec.Limits.CPU, CPULimit
	}
	timer := time.AfterFunc(limit, func() { stopWith(timeReason) })
	defer timer.Stop()
	stopCtx := context.AfterFunc(ctx, func() { stopWith(Canceled) })
	defer stopCtx()
	guardDone := make(chan struct{})
	guardStopped := make(chan struct{})
	go func() {
		defer close(guardStopped)
		heapGuard(min(spec.Limits.Memory, jsMaxHeap), guardDone, func() { stopWith(MemoryLimit) })
	}()

	start := time.Now()
	_, err := vm.RunString(spec.Source)
	elapsed := time.Since(start)
	close(guardDone)
	<-guardStopped
	once.Do(func() {}) // no more reasons from here on

	res := &Result{Wall: elapsed, Reason: Exited, Isolated: true}
	var interrupted *goja.InterruptedError
	var exc *goja.Exception
	var overflow *goja.StackOverflowError
	switch {
	case err == nil:
	case errors.As(err, &interrupted):
		res.Reason, res.ExitCode, res.Signal = why, -1, "killed"
	case errors.As(err, &overflow):
		res.ExitCode = 1
		fmt.Fprintln(stderr, "Uncaught RangeError: Maximum call stack size exceeded")
	case errors.As(err, &exc):
		res.ExitCode = 1
		fmt.Fprintf(stderr, "Uncaught %s\n", strings.TrimSpace(err.Error()))
	default: // a syntax error
		res.ExitCode = 1
		fmt.Fprintf(stderr, "%s\n", err)
	}
	res.Stdout, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrTruncated = stderr.result()
	return res, nil
}

// jsPrinter returns a console method writing its arguments to w.
func jsPrinter(vm *goja.Runtime, w *capped) func(goja.FunctionCall) goja.Value {
	stringify, _ := goja.AssertFunction(vm.Get("JSON").ToObject(vm).Get("stringify"))
	return func(call goja.FunctionCall) goja.Value {
		parts := make([]string, len(call.Arguments))
		for i, a := range call.Arguments {
			parts[i] = a.String()
			if obj, ok := a.(*goja.Object); ok && stringify != nil {
				if _, isFn := goja.AssertFunction(obj); !isFn && obj.ClassName() != "Error" {
					if s, err := stringify(goja.Undefined(), a); err == nil && !goja.IsUndefined(s) {
						parts[i] = s.String()
					}
				}
			}
		}
		w.Write([]byte(strings.Join(parts, " ") + "\n"))
		return goja.Undefined()
	}
}

// heapGuard calls over when the process heap grows by more than max bytes
// since it started, until done is closed.
func heapGuard(max int64, done <-chan struct{}, over func()) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() int64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(sample[0].Value.Uint64())
	}
	base := read()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			if read()-base > max {
				over()
				return
			}
		}
	}
}
