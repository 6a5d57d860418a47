package main

import (
	"context"
	"errors"
)

var errNotYet = errors.New("not available in this build yet")

func runServe(ctx context.Context, env *Env, args []string) error { return errNotYet }
