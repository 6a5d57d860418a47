package main

import (
	"context"
	"errors"
)

var errNotYet = errors.New("not available in this build yet")

func runDemo(ctx context.Context, env *Env, args []string) error  { return errNotYet }
func runEval(ctx context.Context, env *Env, args []string) error  { return errNotYet }
func runServe(ctx context.Context, env *Env, args []string) error { return errNotYet }
