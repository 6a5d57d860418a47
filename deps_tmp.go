//go:build hivedeps

// Package hive pins dependencies while their packages are being written.
package hive

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/anthropics/anthropic-sdk-go"
	_ "github.com/chromedp/chromedp"
	_ "github.com/dbos-inc/dbos-transact-golang/dbos"
	_ "github.com/dop251/goja"
	_ "github.com/openai/openai-go/v3"
	_ "github.com/pkoukk/tiktoken-go"
	_ "github.com/pkoukk/tiktoken-go-loader"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "modernc.org/sqlite"
)
