package config

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSettingsCoverEveryVariable reads the server's and the runtime's
// source: every KILN_ variable named in a string literal, and every
// variable read with getenv("..."), must be a setting (or tooling that is
// never reported), so the help, the docs and the unknown-variable check
// cannot miss one.
func TestSettingsCoverEveryVariable(t *testing.T) {
	literal := regexp.MustCompile(`"(KILN_[A-Z0-9_]*[A-Z0-9])"`)
	getenv := regexp.MustCompile(`[gG]etenv\("([A-Za-z0-9_]+)"\)`)
	found := map[string]string{} // variable -> first file naming it
	files := 0
	for _, root := range []string{"../..", "../../../runtime", "../../../main.go"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for _, re := range []*regexp.Regexp{literal, getenv} {
				for _, m := range re.FindAllSubmatch(b, -1) {
					if _, ok := found[string(m[1])]; !ok {
						found[string(m[1])] = path
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 50 || len(found) < 50 {
		t.Fatalf("read %d files naming %d variables: is the walk rooted right?", files, len(found))
	}
	for name, path := range found {
		if _, ok := Lookup(name); !ok && !Ignored(name) {
			t.Errorf("%s (read in %s) is not in config.Settings: add it, with its default and a line of doc", name, path)
		}
	}
}

// TestSettingsTable checks the table itself: names, flags and groups are
// unique and well formed, and every setting has a doc line.
func TestSettingsTable(t *testing.T) {
	envs, flags := map[string]bool{}, map[string]bool{}
	var groups []string
	for _, s := range Settings {
		if envs[s.Env] {
			t.Errorf("%s listed twice", s.Env)
		}
		envs[s.Env] = true
		if s.Flag != "" {
			if flags[s.Flag] {
				t.Errorf("flag -%s used twice", s.Flag)
			}
			flags[s.Flag] = true
		}
		if s.Doc == "" || strings.Contains(s.Doc, "\n") {
			t.Errorf("%s: the doc must be one line", s.Env)
		}
		if len(groups) == 0 || groups[len(groups)-1] != s.Group {
			if slices.Contains(groups, s.Group) {
				t.Errorf("%s: group %q is split in two", s.Env, s.Group)
			}
			groups = append(groups, s.Group)
		}
		if Ignored(s.Env) {
			t.Errorf("%s is a setting but Ignored says it is tooling", s.Env)
		}
	}
}

// TestDefaultsAreTheDefaults: setting every variable to the default the
// table shows changes nothing, so the help and the docs say what the
// server does when nothing is set.
func TestDefaultsAreTheDefaults(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{"KILN_DATA_DIR": dir}
	implicit, err := Load(nil, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	explicit := map[string]string{"KILN_DATA_DIR": dir}
	for _, s := range Settings {
		if s.Default != "" && s.Env != "KILN_DATA_DIR" {
			explicit[s.Env] = s.Default
		}
	}
	got, err := Load(nil, envOf(explicit))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(implicit, got) {
		t.Errorf("the defaults of the table differ from the server's:\nunset:    %+v\nexplicit: %+v", implicit, got)
	}
	// The same with S3 on (its settings are read only then).
	base["KILN_S3_BUCKET"], explicit["KILN_S3_BUCKET"] = "b", "b"
	a, err := Load(nil, envOf(base))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(nil, envOf(explicit))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Files.S3, b.Files.S3) {
		t.Errorf("S3 defaults differ: %+v vs %+v", a.Files.S3, b.Files.S3)
	}
}

// TestLoadReadsOnlyTheTable: Load asks the environment for settings of
// the table only (with S3 on, to reach every branch).
func TestLoadReadsOnlyTheTable(t *testing.T) {
	var asked []string
	_, err := Load(nil, func(k string) string {
		asked = append(asked, k)
		if k == "KILN_S3_BUCKET" {
			return "b"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range asked {
		if _, ok := Lookup(k); !ok {
			t.Errorf("Load read %s, which is not in the table", k)
		}
	}
}

func TestFlagsAndArguments(t *testing.T) {
	env := envOf(map[string]string{"KILN_ADDR": ":1111", "KILN_LOG_LEVEL": "debug", "PORT": "3000"})
	c, err := Load([]string{"-addr", ":2222", "-db-connect-timeout", "0"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":2222" || c.LogLevel != "debug" || c.DBConnectTimeout != 0 {
		t.Errorf("flags over variables: addr %q, level %q, connect timeout %s", c.Addr, c.LogLevel, c.DBConnectTimeout)
	}
	if c, _ := Load(nil, envOf(map[string]string{"PORT": "3000"})); c.Addr != ":3000" {
		t.Errorf("PORT: addr %q, want :3000", c.Addr)
	}
	if c, _ := Load(nil, envOf(nil)); c.Addr != ":8080" || c.DBConnectTimeout.String() != "30s" {
		t.Errorf("defaults: addr %q, connect timeout %s", c.Addr, c.DBConnectTimeout)
	}
	for _, args := range [][]string{{"serve"}, {"-addr", ":1", "extra"}, {"-no-such-flag"}, {"-addr"}} {
		var ue *UsageError
		if _, err := Load(args, envOf(nil)); !errors.As(err, &ue) {
			t.Errorf("%q: want a usage error, got %v", args, err)
		}
	}
	for _, h := range []string{"-h", "--help", "-help"} {
		if _, err := Load([]string{h}, envOf(map[string]string{"KILN_MAX_DEPTH": "bad"})); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: want flag.ErrHelp, got %v", h, err)
		}
	}
	_, err = Load(nil, envOf(map[string]string{"KILN_TRUST_PROXY": "yes", "KILN_DB_CONNECT_TIMEOUT": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "KILN_TRUST_PROXY") || !strings.Contains(err.Error(), "KILN_DB_CONNECT_TIMEOUT") {
		t.Errorf("want errors naming KILN_TRUST_PROXY and KILN_DB_CONNECT_TIMEOUT, got %v", err)
	}
}

func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables([]string{
		"KILN_ADRR=:9000", "KILN_ADDR=:8080", "KILN_TEST_POSTGRES_URL=x", "KILN_BENCH_X=1", "KILN_REQUIRE_REDIS=1",
		"KILN_PG_DIR=/tmp/x", "KILN_S3_DIR=/tmp/y", "KILN_MAX_DEPHT=3", "KILN_SOMETHING_ELSE_ENTIRELY=1", "PATH=/bin",
		"KILN_ADRR=again", "KILN_WS_MAX_SUBSCRIPTIONS_PER_CONECTION=5",
	})
	want := []Unknown{
		{"KILN_ADRR", "KILN_ADDR"}, {"KILN_MAX_DEPHT", "KILN_MAX_DEPTH"}, {"KILN_SOMETHING_ELSE_ENTIRELY", ""},
		{"KILN_WS_MAX_SUBSCRIPTIONS_PER_CONECTION", "KILN_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if s := got[0].String(); s != "unknown environment variable KILN_ADRR; did you mean KILN_ADDR?" {
		t.Errorf("message %q", s)
	}
}

func TestHelpListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	WriteHelp(&b)
	out := b.String()
	for _, s := range Settings {
		line := s.Env
		if s.Flag != "" {
			line += ", -" + s.Flag
		}
		line += " (default: " + s.ShownDefault() + ")"
		if !strings.Contains(out, line) || !strings.Contains(out, s.Doc) {
			t.Errorf("help lacks %q with its doc", line)
		}
	}
}

// TestConfigurationDocs holds docs/operate/configuration.md to the table:
// every setting has a row (first cell naming it) showing its flag and its
// default, and every variable the reference tables name is a setting.
func TestConfigurationDocs(t *testing.T) {
	b, err := os.ReadFile("../../../docs/operate/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // variable -> its row
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			if _, ok := Lookup(m[1]); !ok {
				t.Errorf("configuration.md documents %s, which is not a setting", m[1])
			}
			rows[m[1]] = line
		}
	}
	for _, s := range Settings {
		row, ok := rows[s.Env]
		switch {
		case !ok:
			t.Errorf("configuration.md has no row for %s (default %s: %s)", s.Env, s.ShownDefault(), s.Doc)
		case s.Flag != "" && !strings.Contains(row, "`-"+s.Flag+"`"):
			t.Errorf("configuration.md: the row of %s does not show its flag -%s", s.Env, s.Flag)
		case s.Default != "" && !strings.Contains(row, "`"+s.Default+"`"):
			t.Errorf("configuration.md: the row of %s does not show its default `%s`", s.Env, s.Default)
		}
	}
}
