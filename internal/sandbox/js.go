package sandbox

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dop251/goja"
)

// jsMain is the built-in [Program] "javascript": goja, run in the
// sandbox's child like any interpreter, so the child's limits (CPU, wall,
// memory, output) hold it. The program sees only the language itself,
// console.log/info/error/warn and print (to stdout and stderr) and a
// global string stdin: no require, no file system, no network.
func jsMain(source, stdin []byte, stdout, stderr io.Writer) int {
	vm := goja.New()
	vm.SetMaxCallStackSize(10000)
	console := vm.NewObject()
	for name, w := range map[string]io.Writer{"log": stdout, "info": stdout, "error": stderr, "warn": stderr} {
		if err := console.Set(name, jsPrinter(vm, w)); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	for name, v := range map[string]any{"console": console, "print": jsPrinter(vm, stdout), "stdin": string(stdin)} {
		if err := vm.Set(name, v); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	_, err := vm.RunScript("main.js", string(source))
	var exc *goja.Exception
	var overflow *goja.StackOverflowError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &overflow):
		fmt.Fprintln(stderr, "Uncaught RangeError: Maximum call stack size exceeded")
	case errors.As(err, &exc):
		fmt.Fprintf(stderr, "Uncaught %s\n", strings.TrimSpace(err.Error()))
	default: // a syntax error
		fmt.Fprintf(stderr, "%s\n", err)
	}
	return 1
}

// jsPrinter returns a console method writing its arguments to w, one
// write per call, so that what was printed before a kill is kept.
func jsPrinter(vm *goja.Runtime, w io.Writer) func(goja.FunctionCall) goja.Value {
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
		if _, err := io.WriteString(w, strings.Join(parts, " ")+"\n"); err != nil {
			panic(vm.NewGoError(err))
		}
		return goja.Undefined()
	}
}
