package main

import "context"

func runData(ctx context.Context, env *Env, args []string) error { return errNotYet }
