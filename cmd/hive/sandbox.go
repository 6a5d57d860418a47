package main

import "context"

func runSandbox(ctx context.Context, env *Env, args []string) error { return errNotYet }
