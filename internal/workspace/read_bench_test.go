package workspace

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadSmall reads a one-line file as a worker's read_file does,
// beside its baseline in the same run: os.ReadFile of the same file.
func BenchmarkReadSmall(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "task.txt"), []byte("item 42: the value is 7\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("hive", func(b *testing.B) {
		w, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := w.Read(context.Background(), "task.txt", 0, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := os.ReadFile(filepath.Join(dir, "task.txt")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
