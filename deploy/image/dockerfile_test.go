package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile reads the instructions and the comments of a Dockerfile.
func parseDockerfile(t *testing.T, path string) (ins []instruction, comments []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	start, n := 0, 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			comments = append(comments, line)
			continue
		}
		if line == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		cont := strings.HasSuffix(line, `\`)
		cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
		if cont {
			continue
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		ins = append(ins, instruction{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ins, comments
}

// TestDockerfile checks the Dockerfile statically (no Docker daemon here):
// a cached, static, -trimpath, version-stamped build on the go.mod's Go
// release, and a final stage from scratch with the same layout and config
// as the image `go run ./deploy/image` builds (Config, and the constants
// of image.go).
func TestDockerfile(t *testing.T) {
	ins, comments := parseDockerfile(t, "../../Dockerfile")
	if len(comments) == 0 || comments[0] != "# syntax=docker/dockerfile:1" {
		t.Errorf("the first line must be '# syntax=docker/dockerfile:1' (RUN --mount needs it)")
	}
	var stages [][]instruction
	args := map[string]string{}
	for _, in := range ins {
		switch {
		case in.cmd == "FROM":
			stages = append(stages, nil)
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}

	// The build stage: golang on go.mod's release, caches, static build.
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mf, err := modfile.ParseLax("go.mod", mod, nil)
	if err != nil {
		t.Fatal(err)
	}
	goMinor := strings.Join(strings.SplitN(mf.Go.Version, ".", 3)[:2], ".")
	if args["GO_VERSION"] != goMinor {
		t.Errorf("ARG GO_VERSION=%s, want go.mod's Go release %s", args["GO_VERSION"], goMinor)
	}
	build := stages[0]
	if !regexp.MustCompile(`^(--platform=\S+ )?golang:\$\{GO_VERSION\}\S* AS build$`).MatchString(build[0].args) {
		t.Errorf("build stage FROM %q, want golang:${GO_VERSION}... AS build", build[0].args)
	}
	var goBuild string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{
		"--mount=type=cache,target=/go/pkg/mod",
		"--mount=type=cache,target=/root/.cache/go-build",
		"CGO_ENABLED=0",
		"-trimpath",
		"-X " + VersionVar + "=${VERSION}",
		"-o /out/rootfs" + EntrypointPath + " .",
	} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the go build RUN lacks %q:\n%s", want, goBuild)
		}
	}
	var rootfs string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "/etc/passwd") {
			rootfs = in.args
		}
	}
	for _, want := range []string{
		"cp /etc/ssl/certs/ca-certificates.crt /out/rootfs" + CAPath,
		fmt.Sprintf(`nonroot:x:%d:%d:nonroot:/home/nonroot:`, UID, GID),
		fmt.Sprintf(`nonroot:x:%d:`, GID),
		"chmod 1777 /out/rootfs/tmp",
		"chmod 0700 /out/data/data /out/home/nonroot",
	} {
		if !strings.Contains(rootfs, want) {
			t.Errorf("the root filesystem RUN lacks %q:\n%s", want, rootfs)
		}
	}

	// The final stage: scratch, the image builder's layout and config.
	final := stages[len(stages)-1]
	if final[0].args != "scratch" {
		t.Errorf("final stage FROM %q, want scratch", final[0].args)
	}
	got := map[string][]string{}
	for _, in := range final[1:] {
		got[in.cmd] = append(got[in.cmd], in.args)
	}
	owner := fmt.Sprintf("--chown=%d:%d", UID, GID)
	for _, want := range []string{
		"--from=build /out/rootfs/ /",
		owner + " --from=build /out/data/ /",
		owner + " --from=build /out/home/ /home/",
	} {
		if !slices.ContainsFunc(got["COPY"], func(c string) bool { return sameFields(c, want) }) {
			t.Errorf("final stage lacks COPY %s (has %q)", want, got["COPY"])
		}
	}
	cfg := Config("${VERSION}")
	if len(got["HEALTHCHECK"]) > 0 {
		t.Errorf("HEALTHCHECK %q cannot run in a scratch image (no shell, no curl)", got["HEALTHCHECK"])
	}
	if !slices.ContainsFunc(comments, func(c string) bool { return strings.Contains(c, "HEALTHCHECK") && strings.Contains(c, "scratch") }) ||
		!slices.ContainsFunc(comments, func(c string) bool { return strings.Contains(c, "/readyz") }) {
		t.Errorf("a comment should say why there is no HEALTHCHECK and to probe /readyz")
	}
	checkJSONList(t, "ENTRYPOINT", got["ENTRYPOINT"], cfg.Entrypoint)
	checkJSONList(t, "VOLUME", got["VOLUME"], slices.Sorted(maps.Keys(cfg.Volumes)))
	checkOne(t, "USER", got["USER"], cfg.User)
	checkOne(t, "WORKDIR", got["WORKDIR"], cfg.WorkingDir)
	checkOne(t, "STOPSIGNAL", got["STOPSIGNAL"], cfg.StopSignal)
	checkOne(t, "EXPOSE", got["EXPOSE"], strings.TrimSuffix(Port, "/tcp"))
	if env := kvFields(got["ENV"]); !slices.Equal(env, slices.Sorted(slices.Values(cfg.Env))) {
		t.Errorf("ENV %q, want the image builder's %q", env, cfg.Env)
	}
	var labels []string
	for k, v := range cfg.Labels {
		labels = append(labels, k+"="+fmt.Sprintf("%q", v))
	}
	slices.Sort(labels)
	if l := kvFields(got["LABEL"]); !slices.Equal(l, labels) {
		t.Errorf("LABEL %q, want the image builder's %q", l, labels)
	}
}

func sameFields(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	slices.Sort(fa)
	slices.Sort(fb)
	return slices.Equal(fa, fb)
}

func checkOne(t *testing.T, cmd string, got []string, want string) {
	t.Helper()
	if len(got) != 1 || got[0] != want {
		t.Errorf("%s %q, want %q", cmd, got, want)
	}
}

func checkJSONList(t *testing.T, cmd string, got []string, want []string) {
	t.Helper()
	var list []string
	if len(got) != 1 || json.Unmarshal([]byte(got[0]), &list) != nil || !slices.Equal(list, want) {
		t.Errorf("%s %q, want the JSON form of %q", cmd, got, want)
	}
}

// kvFields splits ENV and LABEL arguments (KEY=VALUE pairs, values quoted
// or without spaces) into sorted pairs.
func kvFields(args []string) []string {
	re := regexp.MustCompile(`[^\s=]+=("[^"]*"|\S+)`)
	var out []string
	for _, a := range args {
		out = append(out, re.FindAllString(a, -1)...)
	}
	slices.Sort(out)
	return out
}

// TestDockerignore checks that the build context keeps every file the
// server's build reads (its packages' Go and embedded files, go.mod,
// go.sum) and leaves out the large directories.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []ignorePattern
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, newIgnorePattern(l))
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module (eq .Module.Path "kiln")}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .SFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		needed = append(needed, filepath.ToSlash(rel))
	}
	if len(needed) < 50 {
		t.Fatalf("go list found only %d files of the server's build:\n%s", len(needed), out)
	}
	for _, f := range needed {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, which the server's build needs", f)
		}
	}
	for _, f := range []string{".git/HEAD", "data/kiln.db", "bin/kiln", "server/testdata/interop/node_modules/x/index.js",
		"server/testdata/schemathesis/.venv/bin/python", "deploy/.env", "clients/swift/Package.swift"} {
		if !ignored(patterns, f) {
			t.Errorf(".dockerignore should leave out %s", f)
		}
	}
}

type ignorePattern struct {
	re     *regexp.Regexp
	negate bool
}

// newIgnorePattern compiles a .dockerignore line as Docker does: Go's
// filepath.Match syntax plus ** for any number of directories, "!" for an
// exception, and a match of a directory taking what is under it.
func newIgnorePattern(p string) ignorePattern {
	neg := strings.HasPrefix(p, "!")
	p = filepath.ToSlash(filepath.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")))
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '*' && i+1 < len(p) && p[i+1] == '*':
			i++
			if i+1 < len(p) && p[i+1] == '/' {
				i++
				b.WriteString("(.*/)?")
			} else {
				b.WriteString(".*")
			}
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return ignorePattern{regexp.MustCompile(b.String()), neg}
}

// ignored says whether the last pattern matching path, or a directory
// above it, excludes it.
func ignored(patterns []ignorePattern, path string) bool {
	out := false
	for _, p := range patterns {
		match := false
		for q := path; q != "." && q != "/" && q != ""; q = filepath.ToSlash(filepath.Dir(q)) {
			if p.re.MatchString(q) {
				match = true
				break
			}
		}
		if match {
			out = !p.negate
		}
	}
	return out
}
