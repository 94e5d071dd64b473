package keyfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentCreators: many creators at once all get the same content,
// which is what the file holds; a later call reads it without generating.
func TestConcurrentCreators(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	const n = 32
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := LoadOrCreate(path, func() ([]byte, error) { return fmt.Appendf(nil, "secret %d\n", i), nil })
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		}()
	}
	wg.Wait()
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range got {
		if !bytes.Equal(b, onDisk) {
			t.Fatalf("creator %d got %q, the file holds %q", i, b, onDisk)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadOrCreate(path, func() ([]byte, error) { t.Fatal("generated again"); return nil, nil })
	if err != nil || !bytes.Equal(b, onDisk) {
		t.Fatalf("reload: %q %v", b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
