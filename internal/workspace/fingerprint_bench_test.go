package workspace

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFingerprint takes the fingerprint of a tree of 1,000 one-line
// files (a swarm's task files), beside its baseline in the same run: a
// bare walk that hashes every file with os.ReadFile.
func BenchmarkFingerprint(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%20))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d.txt", i)), []byte(fmt.Sprintf("item %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("hive", func(b *testing.B) {
		w, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Fingerprint(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := sha256.New()
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				h.Write(data)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
