package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// goreleaserVersion is the GoReleaser that checks .goreleaser.yaml when
// asked (KILN_REQUIRE_GORELEASER=1); compiling it takes minutes the first
// time on a machine, so make test does not by default.
const goreleaserVersion = "v2.17.0"

type goreleaserConfig struct {
	Version     int    `yaml:"version"`
	ProjectName string `yaml:"project_name"`
	Builds      []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Binary  string   `yaml:"binary"`
		Env     []string `yaml:"env"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
	} `yaml:"builds"`
	Archives []goreleaserArchive `yaml:"archives"`
	Checksum struct {
		NameTemplate string `yaml:"name_template"`
	} `yaml:"checksum"`
}

type goreleaserArchive struct {
	ID    string   `yaml:"id"`
	IDs   []string `yaml:"ids"`
	Files []string `yaml:"files"`
}

func releaseConfig(t *testing.T) goreleaserConfig {
	t.Helper()
	var c goreleaserConfig
	if err := yaml.Unmarshal([]byte(readFile(t, "../.goreleaser.yaml")), &c); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	return c
}

// serverBinaryName is the release's name of the server binary, which the
// image's entrypoint and the systemd unit use too.
func serverBinaryName(t *testing.T) string {
	t.Helper()
	for _, b := range releaseConfig(t).Builds {
		if b.Main == "." {
			return b.Binary
		}
	}
	t.Fatal(".goreleaser.yaml has no build of the server (main: .)")
	return ""
}

// imageConst reads a string constant of the image builder
// (deploy/image/image.go), so that the release, the unit and the image
// agree.
func imageConst(t *testing.T, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "image/image.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && n.Name == name && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						return v
					}
				}
			}
		}
	}
	t.Fatalf("deploy/image/image.go has no string constant %s", name)
	return ""
}

// TestGoreleaser checks .goreleaser.yaml without GoReleaser (whose first
// compile takes minutes): the server and the kiln command, each static,
// -trimpath, for linux, darwin and windows on amd64 and arm64, the server
// stamped with the same variable as the image, archives of both,
// checksums; that each main package resolves on every target (go list
// -deps), and compiles on one that is not this machine's (windows/amd64,
// the one most unlike it; skipped with -short). With
// KILN_REQUIRE_GORELEASER=1, or a goreleaser on PATH, `goreleaser check`
// validates the file too.
func TestGoreleaser(t *testing.T) {
	c := releaseConfig(t)
	if c.Version != 2 {
		t.Errorf("version: %d, want 2 (GoReleaser v2)", c.Version)
	}
	versionVar := imageConst(t, "VersionVar")
	mains := map[string]string{".": "server", "./cmd/kiln": "kiln command"}
	var targets []string
	seen := map[string]bool{}
	for _, b := range c.Builds {
		what, ok := mains[b.Main]
		if !ok {
			t.Errorf("build %s: unexpected main %q", b.ID, b.Main)
			continue
		}
		seen[b.Main] = true
		if !slices.Contains(b.Env, "CGO_ENABLED=0") {
			t.Errorf("build %s (%s): env %q lacks CGO_ENABLED=0", b.ID, what, b.Env)
		}
		if !slices.Contains(b.Flags, "-trimpath") {
			t.Errorf("build %s (%s): flags %q lack -trimpath", b.ID, what, b.Flags)
		}
		for _, goos := range []string{"linux", "darwin", "windows"} {
			if !slices.Contains(b.Goos, goos) {
				t.Errorf("build %s (%s): goos %q lacks %s", b.ID, what, b.Goos, goos)
			}
		}
		for _, arch := range []string{"amd64", "arm64"} {
			if !slices.Contains(b.Goarch, arch) {
				t.Errorf("build %s (%s): goarch %q lacks %s", b.ID, what, b.Goarch, arch)
			}
		}
		for _, goos := range b.Goos {
			for _, arch := range b.Goarch {
				if tg := goos + "/" + arch; !slices.Contains(targets, tg) {
					targets = append(targets, tg)
				}
			}
		}
		if b.Main == "." {
			if !slices.ContainsFunc(b.Ldflags, func(l string) bool { return strings.Contains(l, "-X "+versionVar+"={{ .Version }}") }) {
				t.Errorf("build %s: ldflags %q do not stamp %s={{ .Version }} (as the Dockerfile and deploy/image do)", b.ID, b.Ldflags, versionVar)
			}
			if img := path.Base(imageConst(t, "EntrypointPath")); b.Binary != img {
				t.Errorf("build %s: binary %q, but the image's entrypoint is %q: name them alike", b.ID, b.Binary, img)
			}
		}
		if !slices.ContainsFunc(c.Archives, func(a goreleaserArchive) bool { return slices.Contains(a.IDs, b.ID) }) {
			t.Errorf("build %s (%s) is in no archive", b.ID, what)
		}
	}
	for m, what := range mains {
		if !seen[m] {
			t.Errorf("no build of the %s (main %s)", what, m)
		}
	}
	if c.Checksum.NameTemplate == "" {
		t.Errorf("checksum.name_template is not set")
	}
	for _, a := range c.Archives {
		for _, f := range a.Files {
			if strings.ContainsAny(f, "*?[") {
				continue // globs: LICENSE* may match nothing (GoReleaser warns and goes on)
			}
			if _, err := os.Stat("../" + f); err != nil {
				t.Errorf("archive %s: file %s: %v", a.ID, f, err)
			}
		}
	}

	// The main packages resolve on every target.
	for _, tg := range targets {
		goos, goarch, _ := strings.Cut(tg, "/")
		cmd := exec.Command("go", "list", "-e", "-deps", "-f",
			`{{if .Error}}{{.ImportPath}}: {{.Error}}{{"\n"}}{{end}}{{range .DepsErrors}}{{.}}{{"\n"}}{{end}}`, ".", "./cmd/kiln")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("go list -deps for %s: %v\n%s", tg, err, out)
		}
	}
	if testing.Short() {
		t.Log("cross-compile skipped in -short mode")
	} else if runtime.GOOS != "windows" {
		cmd := exec.Command("go", "build", "-trimpath", "-o", os.DevNull, ".")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=windows", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("the server does not compile for windows/amd64, a target of .goreleaser.yaml: %v\n%s", err, out)
		}
		cmd = exec.Command("go", "build", "-trimpath", "-o", os.DevNull, "./cmd/kiln")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=windows", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("the kiln command does not compile for windows/amd64, a target of .goreleaser.yaml: %v\n%s", err, out)
		}
	}

	t.Run("goreleaser check", func(t *testing.T) {
		var cmd *exec.Cmd
		if p, err := exec.LookPath("goreleaser"); err == nil {
			cmd = exec.Command(p, "check")
		} else if os.Getenv("KILN_REQUIRE_GORELEASER") == "1" {
			cmd = exec.Command("go", "run", "github.com/goreleaser/goreleaser/v2@"+goreleaserVersion, "check")
		} else {
			t.Skipf("goreleaser check skipped: no goreleaser on PATH (set KILN_REQUIRE_GORELEASER=1 to run it with go run github.com/goreleaser/goreleaser/v2@%s; its first compile takes minutes)", goreleaserVersion)
		}
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("goreleaser check: %v\n%s", err, out)
		}
	})
}
