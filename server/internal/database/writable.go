package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"entgo.io/ent/dialect"
)

// ErrUnavailable is returned (wrapped) by Ready when the database does not
// answer.
var ErrUnavailable = errors.New("database unavailable")

// CheckWritableDir returns an error saying "<what> <dir> is not writable:
// <reason>" when this process cannot create files in dir (permissions, a
// read-only file system). It creates and removes a small file to be sure.
func CheckWritableDir(what, dir string) error {
	f, err := os.CreateTemp(dir, ".kiln-write-check-*")
	if err != nil {
		if notWritable(err) {
			return fmt.Errorf("%s %s is not writable: %w", what, dir, cause(err))
		}
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func notWritable(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// cause is the system's reason of a file error ("permission denied"),
// without the operation and path the message already states.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Ready reports whether the database takes writes now. SQLite: the
// database file and its directory are writable (an access check, done at
// most every two seconds). PostgreSQL: a connection answers and is not
// read-only (a hot standby, default_transaction_read_only). An error
// wrapping ErrUnavailable means the database did not answer; any other
// says why writes would fail, without internals.
func (d *DB) Ready(ctx context.Context) error {
	if d.Dialect == dialect.Postgres {
		var ro string
		if err := d.SQL.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&ro); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if ro == "on" {
			return errors.New("database is read-only (transaction_read_only is on)")
		}
		return nil
	}
	if err := d.Ping(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return d.writable.check(d.path)
}

// writableCache rate-limits the SQLite writability check.
type writableCache struct {
	mu  sync.Mutex
	at  time.Time
	err error
}

// writableEvery is how long a writability check result is reused.
const writableEvery = 2 * time.Second

func (c *writableCache) check(path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < writableEvery {
		return c.err
	}
	c.at, c.err = time.Now(), sqliteWritable(path)
	return c.err
}

// sqliteWritable checks that the database file can be opened for writing
// and that its directory takes new files (SQLite creates its journal
// there), without writing anything.
func sqliteWritable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		if notWritable(err) {
			return fmt.Errorf("database file %s is not writable: %w", path, cause(err))
		}
		return fmt.Errorf("database file %s: %w", path, cause(err))
	}
	f.Close()
	dir := filepath.Dir(path)
	if err := canWriteDir(dir); err != nil {
		return fmt.Errorf("database directory %s is not writable: %w", dir, err)
	}
	return nil
}
