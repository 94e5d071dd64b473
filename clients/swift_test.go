package clients

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// TestSwiftSDK compiles the generated Swift SDK and its XCTest tests
// (swift/Tests/KilnTests) with the Swift compiler, through swift/test.sh,
// and runs them: the package in Swift 6 language mode (no error, no
// warning) and type-checked in Swift 5 mode (no warning); the unit tests
// (input encoding, dates, error mapping, pagination, token refresh, the
// subscription state machine on scripted sockets); and the live tests
// against a server started here on embedded defaults: the flow of an app
// (accounts, records, conflicts, another user refused, files, custom
// operations, sign out), token refresh, a subscription receiving another
// client's event, one resuming after the server closed its socket (a
// password change), and the default socket's answer where the platform has
// no WebSockets. The examples of swift/README.md and of the main README's
// SDK section are type-checked against the module. No test may skip.
//
// The compiler is $KILN_SWIFTC, swiftc on PATH, or ../shared/tools/swift/
// swiftc beside the repository (it unpacks a toolchain into ~/.cache once
// and keeps it). Without one the test skips, unless KILN_REQUIRE_SWIFT=1
// (CI), when it fails. Builds are cached in ~/.cache/kiln/swift-build by
// the hash of their inputs (see swift/test.sh). KILN_SWIFT_VERBOSE=1 logs
// the XCTest output.
func TestSwiftSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server and runs the Swift compiler; skipped with -short")
	}
	swiftc := findSwiftc(t)
	bin := kilntest.BuildT(t, "..")
	// An OpenID provider in the test: the SDK signs in with an ID token it
	// issued (an hour's expiry: compiling takes minutes) and starts its
	// redirect flow.
	idp := kilntest.StartOIDCProvider(t)
	idToken := idp.IDToken(t, kilntest.Claims{"sub": "swift-1", "aud": "swift-app", "nonce": "swift-nonce",
		"email": "swift-id@example.com", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	// Another identity, for an anonymous user who signs in with it.
	anonToken := idp.IDToken(t, kilntest.Claims{"sub": "swift-anon", "aud": "swift-app", "nonce": "swift-nonce",
		"email": "swift-anon@example.com", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	// A short revalidation period: a password change closes sockets at once.
	srv := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_WS_REVALIDATE=200ms",
		"KILN_AUTH_OIDC_PROVIDERS=test|"+idp.URL+"|swift-app", "KILN_AUTH_REDIRECT_CLIENTS=test|swift-web|swift-secret",
		"KILN_AUTH_REDIRECT_URIS=io.kiln.test:/auth")

	// The READMEs' examples, in functions, type-checked (never run).
	examples, err := readmeExamples("swift/README.md", "swift")
	if err != nil {
		t.Fatal(err)
	}
	mainExamples, err := sectionBlocks("../README.md", "## Client SDKs", "swift")
	if err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(t.TempDir(), "ReadmeExamples.swift")
	src := "import Foundation\n#if canImport(FoundationNetworking)\nimport FoundationNetworking\n#endif\nimport Kiln\n\n// The Swift blocks of clients/swift/README.md.\nfunc readmeExamples(photoURL: URL) async throws {\n" + examples + "}\n\n" +
		"// The Swift blocks of the main README's SDK section.\nfunc mainReadmeExamples(profileID: String, jpegData: Data) async throws {\n" + mainExamples + "}\n"
	if err := os.WriteFile(readme, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	// A generous bound, so that a hung test ends with its output.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "swift/test.sh", "--typecheck", readme)
	cmd.Env = append(os.Environ(), "SWIFTC="+swiftc, "KILN_URL="+srv.URL+"/graphql", "KILN_REQUIRE_LIVE=1",
		"KILN_TEST_ID_TOKEN="+idToken, "KILN_TEST_ID_TOKEN_ANON="+anonToken, "KILN_TEST_ID_NONCE=swift-nonce", "KILN_TEST_ID_ISSUER="+idp.URL)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("swift/test.sh took %s", time.Since(start).Round(time.Millisecond))
	text := string(out)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "kiln-swift: ") || strings.HasPrefix(line, "note: ") {
			t.Log(line)
		}
	}
	if err != nil {
		t.Fatalf("swift/test.sh: %v%s\n%s", err, lastStarted(text), tail(text, 200))
	}
	if os.Getenv("KILN_SWIFT_VERBOSE") == "1" {
		t.Logf("swift/test.sh output:\n%s", text)
	}

	// Every listed test ran, and none skipped.
	listed := regexp.MustCompile(`kiln-swift: \d+ test classes, (\d+) tests`).FindStringSubmatch(text)
	executed := regexp.MustCompile(`Test Suite 'All tests' passed at [^\n]*\n\s*Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?0 failures`).FindStringSubmatch(text)
	if listed == nil || executed == nil {
		t.Fatalf("cannot tell what ran:\n%s", tail(text, 60))
	}
	want, _ := strconv.Atoi(listed[1])
	ran, _ := strconv.Atoi(executed[1])
	if ran != want || ran < 30 || executed[2] != "" {
		t.Fatalf("%d tests listed, %d ran, %q skipped (want all run, none skipped):\n%s", want, ran, executed[2], skippedLines(text))
	}
	if n := countTests(t); n != want {
		t.Fatalf("swift/Tests/KilnTests has %d test functions, the runner listed %d: swift/test.sh's runner misses some (each must be `func testX()` in a `final class X: XCTestCase`)", n, want)
	}
	t.Logf("%d Swift tests passed (unit and live, against %s)", ran, srv.URL)
}

// findSwiftc returns the Swift compiler, or skips (fails with
// KILN_REQUIRE_SWIFT=1) without one.
func findSwiftc(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("KILN_SWIFTC")}
	if p, err := exec.LookPath("swiftc"); err == nil {
		candidates = append(candidates, p)
	}
	if shared, err := filepath.Abs(filepath.Join("..", "..", "shared", "tools", "swift", "swiftc")); err == nil {
		candidates = append(candidates, shared)
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); c != "" && err == nil && !fi.IsDir() {
			return c
		}
	}
	msg := "no Swift compiler: set KILN_SWIFTC, put swiftc on PATH, or provide ../shared/tools/swift/swiftc beside the repository"
	if os.Getenv("KILN_REQUIRE_SWIFT") == "1" {
		t.Fatal("KILN_REQUIRE_SWIFT=1 but " + msg)
	}
	t.Skip(msg + "; the Swift SDK is not compiled or tested (set KILN_REQUIRE_SWIFT=1 to fail instead)")
	return ""
}

// countTests counts the test functions in swift/Tests/KilnTests.
func countTests(t *testing.T) int {
	t.Helper()
	files, _ := filepath.Glob("swift/Tests/KilnTests/*.swift")
	re := regexp.MustCompile(`(?m)^\s*func test\w*\(\)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(re.FindAll(b, -1))
	}
	return n
}

// lastStarted names the test that started last (the one that hung or crashed).
func lastStarted(out string) string {
	last := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "Test Case '") && strings.Contains(l, "' started") {
			last = l
		}
	}
	if last == "" {
		return ""
	}
	return fmt.Sprintf(" (last: %s)", last)
}

func skippedLines(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "skipped") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// TestSwiftSourcesHaveHeader checks every generated Swift source carries
// the generated-code header (the generator replaces and prunes those), and
// the hand-written tests and script do not (so it never touches them).
func TestSwiftSourcesHaveHeader(t *testing.T) {
	n := 0
	filepath.WalkDir("swift", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".swift") || strings.HasSuffix(p, ".sh")) {
			return err
		}
		b, _ := os.ReadFile(p)
		generated := strings.Contains(strings.Join(strings.SplitN(string(b), "\n", 3)[:2], "\n"), "Code generated by kiln. DO NOT EDIT.")
		handWritten := strings.HasPrefix(p, "swift/Tests/") || p == "swift/test.sh"
		if generated == handWritten {
			t.Errorf("%s: generated header %v in the wrong place", p, generated)
		}
		n++
		return nil
	})
	if n < 10 {
		t.Fatalf("only %d Swift files", n)
	}
}
