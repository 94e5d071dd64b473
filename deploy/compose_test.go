// Package deploy holds the deployment files (docker-compose.yml, the
// systemd unit, the env file templates) and their checks; the image
// builder is deploy/image, the release configuration .goreleaser.yaml at
// the root. docs/operate/deploy.md describes them.
package deploy

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/goccy/go-yaml"

	"kiln/server/kilntest"
)

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string            `yaml:"image"`
	Restart         string            `yaml:"restart"`
	Command         []string          `yaml:"command"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Build           *composeBuild     `yaml:"build"`
	Environment     map[string]string `yaml:"environment"`
	EnvFile         any               `yaml:"env_file"`
	DependsOn       map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	Volumes []string `yaml:"volumes"`
	Ports   []string `yaml:"ports"`
}

type composeBuild struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

// TestCompose checks docker-compose.yml statically (there is no container
// engine to run it here): the four services, images pinned to a version
// (PostgreSQL 15, Redis 7), healthchecks that the server waits for, the
// server built from the repository's Dockerfile, and an environment made
// of real settings that points at the other services.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.UnmarshalWithOptions(b, &c, yaml.Strict()); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	pinned := map[string]*regexp.Regexp{
		"postgres": regexp.MustCompile(`^postgres:15\.\d+(-\w+)?$`),
		"redis":    regexp.MustCompile(`^redis:7\.\d+\.\d+(-\w+)?$`),
		"minio":    regexp.MustCompile(`^(quay\.io/)?minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$`),
	}
	for name, re := range pinned {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s is missing", name)
			continue
		}
		if !re.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version (want %s)", name, s.Image, re)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD" {
			t.Errorf("service %s has no healthcheck [\"CMD\", ...]", name)
		}
	}
	kiln, ok := c.Services["kiln"]
	if !ok {
		t.Fatal("service kiln is missing")
	}
	if kiln.Build == nil || kiln.Build.Context != ".." || kiln.Build.Dockerfile != "Dockerfile" {
		t.Errorf("kiln should be built from the repository's Dockerfile (context .., dockerfile Dockerfile), got %+v", kiln.Build)
	}
	if _, err := os.Stat(filepath.Join("..", "Dockerfile")); err != nil {
		t.Error(err)
	}
	for name := range pinned {
		if kiln.DependsOn[name].Condition != "service_healthy" {
			t.Errorf("kiln should wait for %s to be healthy (depends_on condition service_healthy)", name)
		}
	}
	if kiln.EnvFile != nil {
		t.Errorf("kiln: env_file would pass every variable of .env to the server; name them in environment")
	}
	if !slices.ContainsFunc(kiln.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
		t.Errorf("kiln: no volume on /data (the image's KILN_DATA_DIR): %q", kiln.Volumes)
	}
	env := kiln.Environment
	checkSettings(t, "docker-compose.yml (kiln)", slices.Collect(maps.Keys(env)))
	want := map[string]string{
		"KILN_ENV":         "production",
		"REDIS_URL":        "redis://redis:6379/0",
		"KILN_S3_ENDPOINT": "http://minio:9000",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("kiln: %s=%q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["DATABASE_URL"], "postgres://") || !strings.Contains(env["DATABASE_URL"], "@postgres:5432/") {
		t.Errorf("kiln: DATABASE_URL=%q does not point at the postgres service", env["DATABASE_URL"])
	}
	for _, k := range []string{"KILN_JWT_KEYS", "KILN_ADMIN_SECRET", "KILN_S3_BUCKET", "KILN_S3_SECRET_KEY"} {
		if env[k] == "" {
			t.Errorf("kiln: %s is not set", k)
		}
	}
	// Every ${VAR} the file uses is in .env.example (or has a default),
	// and every key of .env.example is used.
	example := envKeys(t, ".env.example")
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{(\w+)(:?[-?])?`).FindAllStringSubmatch(string(b), -1) {
		used[m[1]] = true
		if !slices.Contains(example, m[1]) && !strings.HasSuffix(m[2], "-") {
			t.Errorf("docker-compose.yml uses ${%s} without a default, and .env.example does not set it", m[1])
		}
	}
	for _, k := range example {
		if !used[k] {
			t.Errorf(".env.example sets %s, which docker-compose.yml does not use", k)
		}
	}
	for _, v := range []string{"kiln-data", "postgres-data", "minio-data"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Errorf("named volume %s is not declared", v)
		}
	}
}

// TestEnvFiles checks the env file templates: their variables (set or
// commented out) are real settings, and gen-env.sh prints the keys of
// .env.example with values the server takes in production.
func TestEnvFiles(t *testing.T) {
	for _, f := range []string{".env.example", "kiln.env.example"} {
		var server []string
		for _, k := range envKeys(t, f) {
			if k != "POSTGRES_PASSWORD" && k != "MINIO_ROOT_PASSWORD" && k != "KILN_VERSION" {
				server = append(server, k)
			}
		}
		checkSettings(t, f, server)
	}
	out, err := exec.Command("sh", "gen-env.sh").Output()
	if err != nil {
		t.Fatalf("sh gen-env.sh: %v", err)
	}
	gen := parseEnv(t, string(out))
	example := envKeys(t, ".env.example")
	if got := slices.Sorted(maps.Keys(gen)); !slices.Equal(got, slices.Sorted(slices.Values(setKeys(t, ".env.example")))) {
		t.Errorf("gen-env.sh prints %q, .env.example sets %q", got, example)
	}
	var keys []struct{ Kid, Key string }
	if err := json.Unmarshal([]byte(gen["KILN_JWT_KEYS"]), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("KILN_JWT_KEYS=%q: %v", gen["KILN_JWT_KEYS"], err)
	}
	if seed, err := base64.StdEncoding.DecodeString(keys[0].Key); err != nil || len(seed) != 32 {
		t.Errorf("KILN_JWT_KEYS key %q is not 32 bytes in base64", keys[0].Key)
	}
	for k, v := range gen {
		if len(v) < 32 {
			t.Errorf("%s=%q is short for a secret", k, v)
		}
	}
	if testing.Short() {
		return
	}
	// The server in production mode takes the generated secrets and
	// refuses the placeholders.
	bin := serverBinary(t)
	prod := []string{"KILN_ENV=production", "KILN_DATA_DIR=" + t.TempDir(),
		"KILN_JWT_KEYS=" + gen["KILN_JWT_KEYS"], "KILN_ADMIN_SECRET=" + gen["KILN_ADMIN_SECRET"]}
	s := kilntest.Start(t, bin, prod...)
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("production server with gen-env.sh's secrets: /readyz %d", resp.StatusCode)
	}
	placeholders := parseEnv(t, readFile(t, ".env.example"))
	for _, name := range []string{"KILN_JWT_KEYS", "KILN_ADMIN_SECRET"} {
		env := append(slices.Clone(prod), "KILN_DATA_DIR="+t.TempDir(), name+"="+placeholders[name])
		srv, err := kilntest.StartE(bin, env...)
		if err == nil {
			_ = srv.Stop()
			t.Errorf("the server started in production with .env.example's placeholder %s", name)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("refusing the placeholder, the server should name %s:\n%v", name, err)
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// serverBinary builds the example app's server once per test binary.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { builtBin, buildErr = kilntest.Build("..") })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// settingNames are the variables the server reads: the string literals of
// the configuration package (its list of settings).
func settingNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../server/internal/config/*.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	re := regexp.MustCompile(`^(KILN_[A-Z0-9_]+|DATABASE_URL|REDIS_URL|PORT)$`)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && re.MatchString(s) {
					names[s] = true
				}
			}
			return true
		})
	}
	if len(names) < 40 {
		t.Fatalf("found only %d setting names in server/internal/config", len(names))
	}
	return names
}

// checkSettings fails for each name the server does not read (in
// production the server refuses unknown KILN_ variables).
func checkSettings(t *testing.T, where string, names []string) {
	t.Helper()
	known := settingNames(t)
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %s is not a setting of the server (see docs/operate/configuration.md)", where, n)
		}
	}
}

// envKeys lists the variables an env file sets or shows commented out
// ("# KEY=value").
func envKeys(t *testing.T, path string) []string {
	t.Helper()
	re := regexp.MustCompile(`^(?:#\s*)?([A-Z][A-Z0-9_]*)=`)
	var keys []string
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		if m := re.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil && !slices.Contains(keys, m[1]) {
			keys = append(keys, m[1])
		}
	}
	return keys
}

// setKeys lists the variables an env file sets (not commented out).
func setKeys(t *testing.T, path string) []string {
	return slices.Collect(maps.Keys(parseEnv(t, readFile(t, path))))
}

// parseEnv reads KEY=VALUE lines, values bare or in single quotes (the
// subset of the syntax that compose, systemd and sh read alike).
func parseEnv(t *testing.T, s string) map[string]string {
	t.Helper()
	env := map[string]string{}
	re := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=('([^']*)'|[^'"\s]*)$`)
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("env line %q: want KEY=value or KEY='value'", l)
			continue
		}
		env[m[1]] = m[2]
		if strings.HasPrefix(m[2], "'") {
			env[m[1]] = m[3]
		}
	}
	return env
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
