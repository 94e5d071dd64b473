package bench

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// generateTree is what the generator reads and writes, plus what the Go
// packages it loads (ent, graph) need to type-check.
var generateTree = []string{"go.mod", "go.sum", "gqlgen.yml", "main.go", "schema", "generator", "cmd", "runtime", "ent", "graph", "migrations", "server"}

// BenchmarkGenerate measures `kiln generate` on an unchanged schema:
//
//   - full: with -force, the whole pipeline: load and validate
//     schema/*.graphql, emit ent schema and GraphQL files, load the ent
//     schema, plan migrations for both dialects (which must come out "up to
//     date"), run ent + entgql and gqlgen, write the SDKs;
//   - unchanged: without -force, a run that finds the schema, the generator
//     and the generated files as the last run left them and does nothing
//     (it must say "kiln: up to date:").
//
// It works on a copy of the repository in a temp directory, with the
// generator binary built once beforehand, so the figure excludes compiling
// the generator but includes the package loading that ent and gqlgen do
// through the (warm) Go build cache.
func BenchmarkGenerate(b *testing.B) {
	gen, dst := generatorCopy(b)
	b.Run("full", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := generate(gen, dst, true); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := generate(gen, dst, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var (
	genOnce         sync.Once
	genBin, genRoot string
	genErr          error
	genSummary      []byte
)

// generatorCopy copies the tree and builds the generator once per test
// binary run (go test calls a benchmark function once per b.N round), and
// runs it once untimed to warm the build cache for the copy's packages.
func generatorCopy(b *testing.B) (gen, root string) {
	b.Helper()
	src := moduleRoot(b)
	genOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-bench-gen-")
		if err != nil {
			genErr = err
			return
		}
		cleanupDirs = append(cleanupDirs, dir)
		genRoot = filepath.Join(dir, "kiln")
		for _, p := range generateTree {
			if err := copyPath(filepath.Join(src, p), filepath.Join(genRoot, p)); err != nil {
				genErr = fmt.Errorf("copy %s: %v", p, err)
				return
			}
		}
		genBin = filepath.Join(dir, "gen")
		build := exec.Command("go", "build", "-o", genBin, "./cmd/kiln")
		build.Dir = genRoot
		if out, err := build.CombinedOutput(); err != nil {
			genErr = fmt.Errorf("go build ./cmd/kiln: %v\n%s", err, out)
			return
		}
		var out []byte
		out, genErr = generate(genBin, genRoot, true)
		genSummary, _, _ = bytes.Cut(out, []byte("\n"))
	})
	if genErr != nil {
		b.Fatal(genErr)
	}
	b.Logf("%s", genSummary) // "kiln: N models (...), M enums": the figure grows with the schema
	return genBin, genRoot
}

// generate runs the generator on root (with -force: the whole pipeline);
// it fails unless both dialects' migrations come out up to date (nothing
// to plan), or, without force, unless the run had nothing to do.
func generate(gen, root string, force bool) ([]byte, error) {
	args := []string{"generate", "-root", root}
	if force {
		args = append(args, "-force")
	}
	cmd := exec.Command(gen, args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s generate -root %s: %v\n%s", gen, root, err, out.Bytes())
	}
	wants := []string{"migrations/sqlite up to date", "migrations/postgres up to date"}
	if !force {
		wants = []string{"kiln: up to date:"}
	}
	for _, want := range wants {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			return out.Bytes(), fmt.Errorf("generator did not report %q: the committed generated code is stale (run make generate)\n%s", want, out.Bytes())
		}
	}
	return out.Bytes(), nil
}

// copyPath copies a file or a directory tree (regular files only).
func copyPath(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(path, target)
	})
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
