package generate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// snap is a copy of the generated paths taken before a run, restored if the
// run fails so that a failed generation leaves the tree as it was.
type snap struct {
	root, dir string
	paths     []string
}

func snapshot(root string, paths []string) (*snap, error) {
	dir, err := os.MkdirTemp("", "kiln-snapshot-")
	if err != nil {
		return nil, err
	}
	s := &snap{root: root, dir: dir, paths: paths}
	for _, p := range paths {
		if err := copyTree(filepath.Join(root, p), filepath.Join(dir, p)); err != nil {
			s.discard()
			return nil, fmt.Errorf("snapshot %s: %w", p, err)
		}
	}
	return s, nil
}

func (s *snap) restore() error {
	for _, p := range s.paths {
		if err := os.RemoveAll(filepath.Join(s.root, p)); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(s.dir, p), filepath.Join(s.root, p)); err != nil {
			return err
		}
	}
	return nil
}

func (s *snap) discard() { os.RemoveAll(s.dir) }

// copyTree copies a file or directory; a missing source copies nothing.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
