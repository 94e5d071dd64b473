// Package keyfile keeps a local secret (signing keys, URL-signing secrets)
// in a file that is created once: several processes starting at once on the
// same directory all end up with the same content, and no reader ever sees
// a partial file.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreate returns the content of path, creating it (mode 0600, its
// directory 0700) with the content generate returns when it does not
// exist. When another process creates it at the same time, its content
// wins and is returned.
func LoadOrCreate(path string, generate func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	content, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	// Write a temporary file completely, then link it into place: a
	// concurrent creator's file wins intact.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, content); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	err = os.Link(tmp.Name(), path)
	if err == nil {
		return content, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		// No hard links on this file system: create exclusively.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			if err := writeSynced(f, content); err != nil {
				os.Remove(path)
				return nil, fmt.Errorf("write %s: %w", path, err)
			}
			return content, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
	}
	return os.ReadFile(path) // another process created it first
}

// writeSynced writes content to f with mode 0600, syncs and closes it.
func writeSynced(f *os.File, content []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(content)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
