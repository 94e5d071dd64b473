package generate

import (
	"os"
	"path/filepath"
	"testing"
)

// A restored snapshot has the files and modes it had, and build output
// under skipped directories is neither copied nor removed.
func TestSnapshotRestore(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("clients/swift/test.sh", "#!/bin/sh\n", 0o755)
	write("clients/swift/Sources/A.swift", "a", 0o644)
	write("clients/kotlin/target/big.jar", "build output", 0o644)
	s, err := snapshot(root, []string{"clients"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.discard()
	if _, err := os.Stat(filepath.Join(s.dir, "clients/kotlin/target")); !os.IsNotExist(err) {
		t.Errorf("build output was copied into the snapshot: %v", err)
	}
	// A failed run changes and adds files.
	write("clients/swift/Sources/A.swift", "changed", 0o644)
	write("clients/swift/Sources/B.swift", "new", 0o644)
	if err := os.Chmod(filepath.Join(root, "clients/swift/test.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "clients/swift/Sources/A.swift")); string(b) != "a" {
		t.Errorf("A.swift = %q after restore", b)
	}
	if _, err := os.Stat(filepath.Join(root, "clients/swift/Sources/B.swift")); !os.IsNotExist(err) {
		t.Errorf("a file the failed run added is still there: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "clients/swift/test.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("test.sh mode after restore: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "clients/kotlin/target/big.jar")); string(b) != "build output" {
		t.Errorf("build output was touched: %q", b)
	}
}
