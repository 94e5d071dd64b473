package generate

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// snap is a copy of the generated paths taken before a run, restored if the
// run fails so that a failed generation leaves the tree as it was. Build
// output and downloads (skippedDirs: clients/kotlin/target, .build, ...)
// are neither copied nor touched; file modes are kept (clients/swift/test.sh
// stays executable).
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
		if err := removeTree(filepath.Join(s.root, p)); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(s.dir, p), filepath.Join(s.root, p)); err != nil {
			return err
		}
	}
	return nil
}

func (s *snap) discard() { os.RemoveAll(s.dir) }

// skipped reports whether a directory holds build output, not sources.
func skipped(d fs.DirEntry) bool { return d.IsDir() && slices.Contains(skippedDirs, d.Name()) }

// removeTree removes a file or the files of a directory, except under
// skipped directories; a missing path removes nothing.
func removeTree(path string) error {
	var dirs []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if skipped(d) {
			return filepath.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return os.Remove(p)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i]) // only empty ones go
	}
	return nil
}

// copyTree copies a file or directory with the files' modes, except
// skipped directories; a missing source copies nothing.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if skipped(d) {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode().Perm()) // WriteFile keeps an existing file's mode
	})
}
