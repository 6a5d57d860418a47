package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hive-swarm/hive/internal/config"
)

func TestJournalURL(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the default data directory is checked on Linux")
	}
	dir := t.TempDir()
	withDB := &config.Config{Path: filepath.Join(dir, "conf", "hive.toml"), Defaults: config.Defaults{DB: "runs/x.db"}}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		name   string
		flag   string
		cfg    *config.Config
		getenv map[string]string
		want   string
	}{
		{"flag wins", "postgres://h/db", withDB, nil, "postgres://h/db"},
		{"defaults.db is relative to hive.toml", "", withDB, nil, filepath.Join(dir, "conf", "runs", "x.db")},
		{"defaults.db URL as is", "", &config.Config{Defaults: config.Defaults{DB: "sqlite:a.db"}}, nil, "sqlite:a.db"},
		{"XDG_DATA_HOME", "", &config.Config{}, map[string]string{"XDG_DATA_HOME": filepath.Join(dir, "xdg"), "HOME": dir}, filepath.Join(dir, "xdg", "hive", "hive.db")},
		{"HOME", "", &config.Config{}, map[string]string{"HOME": dir}, filepath.Join(dir, ".local", "share", "hive", "hive.db")},
	} {
		got, err := journalURL(c.flag, c.cfg, env(c.getenv))
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, ".local", "share", "hive"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory: %v, %v; want mode 0700", fi, err)
	}
	if _, err := journalURL("", &config.Config{}, env(nil)); err == nil {
		t.Fatal("no HOME and no --db: want an error")
	}
}
