package generate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The generation cache: a run whose inputs (the schema directory, the
// generator's own executable, the module path) and outputs (every file
// under the directories it writes) are what the last successful run saw
// has nothing to do. The stamp lives in the user's cache directory, keyed
// by the project's path, never in the project, so a fresh clone (CI's
// `make check`) always generates.

// outputRoots are what a run writes (and gqlgen reads: hand-written
// resolvers), relative to the project root.
var outputRoots = []string{"ent", "graph", "migrations", "clients", "schema", "gqlgen.yml", "go.mod"}

// skippedDirs hold build output and downloads, not generated files.
var skippedDirs = []string{"target", "build", "node_modules", ".build", ".gradle", ".venv"}

type stamp struct {
	Inputs  string `json:"inputs"`
	Outputs string `json:"outputs"`
}

// stampPath is where the stamp of the project at root is kept ("" when
// there is no cache directory).
func stampPath(root string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, "kiln", "generate", hex.EncodeToString(sum[:12])+".json")
}

// inputsHash hashes what determines the output: the configuration, the
// schema directory and the running generator.
func inputsHash(cfg Config) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "module %s\n", cfg.Module)
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := hashFile(h, "generator", exe); err != nil {
		return "", err
	}
	if err := hashTree(h, cfg.SchemaDir, "schema-input"); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// outputsHash hashes the files a run writes, and the hand-written files
// beside them.
func outputsHash(root string) (string, error) {
	h := sha256.New()
	for _, r := range outputRoots {
		if err := hashTree(h, filepath.Join(root, r), r); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashTree hashes the names and contents of the files under path (a file
// or a directory; missing is hashed as missing), in a fixed order.
func hashTree(h hash.Hash, path, name string) error {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		fmt.Fprintf(h, "missing %s\n", name)
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return hashFile(h, name, path)
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && (slices.Contains(skippedDirs, d.Name()) || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		return hashFile(h, name+"/"+filepath.ToSlash(rel), p)
	})
}

func hashFile(h hash.Hash, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file %s %d\n", name, fi.Size())
	_, err = io.Copy(h, f)
	return err
}

// upToDate reports whether the last successful run had these inputs and
// left the outputs as they are now.
func upToDate(root, inputs string) bool {
	p := stampPath(root)
	if p == "" || inputs == "" {
		return false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	var st stamp
	if json.Unmarshal(b, &st) != nil || st.Inputs != inputs {
		return false
	}
	out, err := outputsHash(root)
	return err == nil && out == st.Outputs
}

// saveStamp records a successful run; a failure only costs the next run
// its shortcut.
func saveStamp(root, inputs string) {
	p := stampPath(root)
	if p == "" || inputs == "" {
		return
	}
	out, err := outputsHash(root)
	if err != nil {
		return
	}
	b, _ := json.Marshal(stamp{Inputs: inputs, Outputs: out})
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), "stamp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr != nil || cerr != nil || os.Rename(f.Name(), p) != nil {
		_ = os.Remove(f.Name())
	}
}
