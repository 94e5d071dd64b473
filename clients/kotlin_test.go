package clients

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kiln/server/kilntest"
)

// TestKotlinSDKLive compiles the generated Kotlin SDK with Maven and runs
// its own tests (kotlin/src/test, generated: the runtime, session stores,
// close) and the example's (kotlin-tests/*.kt, copied into src/test of a
// copy of the SDK) against a live server started here:
// sign up, create, list with filter and pagination, update with a stale
// version (Conflict), a subscription receiving another client's event,
// custom operations (also by hash, against an allow-list server), sign out,
// a subscription that reconnects and resubscribes after the server
// closed its socket, a session kept in a file across clients, close()
// ending a live subscription, and files: upload with progress, attach (avatar,
// attachments), read back, download, another user refused, typed upload
// and attach errors with their reason, on the local disk store and, when
// KILN_TEST_S3_ENDPOINT is set, on S3; sign-in with an ID token issued by
// an OpenID provider running in the test, through that provider's
// redirect flow, and with an email code the test's SMTP server received
// (served to the JUnit test by a loopback mailbox endpoint). Without mvn or java it skips, unless
// KILN_REQUIRE_KOTLIN=1. Maven downloads are cached in ~/.m2.
func TestKotlinSDKLive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a server and runs Maven; skipped with -short")
	}
	requireMaven(t)
	bin := kilntest.BuildT(t, "..")
	// An OpenID provider in the test: the SDK signs in with an ID token it
	// issued (an hour's expiry, for a slow Maven) and through its redirect
	// flow.
	idp := kilntest.StartOIDCProvider(t)
	idp.AddClient("kotlin-web", "kotlin-secret")
	idp.SignInAs(kilntest.Claims{"sub": "kotlin-redirect-1", "email": "kotlin-redirect@example.com", "email_verified": true})
	idToken := idp.IDToken(t, kilntest.Claims{"sub": "kotlin-1", "aud": "kotlin-app", "nonce": "kotlin-nonce",
		"email": "kotlin-id@example.com", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	// Mail goes to an SMTP server in the test; the JUnit test reads the
	// last sign-in code mailed to an address at mailbox/code?to=<address>.
	smtpSrv := kilntest.StartSMTP(t)
	codeLine := regexp.MustCompile(`(?m)^(\d{6})\r?$`)
	// Push goes to a fake FCM in the test; the JUnit test reads what it
	// accepted for a device token at mailbox/push?token=<token> (the
	// notifications' titles, one per line).
	fcm := kilntest.StartFakeFCM(t)
	creds := filepath.Join(t.TempDir(), "fcm.json")
	if err := os.WriteFile(creds, fcm.ServiceAccount, 0o600); err != nil {
		t.Fatal(err)
	}
	mailbox := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/push" {
			for _, a := range fcm.Accepted() {
				if a.Token == r.URL.Query().Get("token") {
					msg, _ := a.Payload["message"].(map[string]any)
					n, _ := msg["notification"].(map[string]any)
					title, _ := n["title"].(string)
					_, _ = io.WriteString(w, title+"\n")
				}
			}
			return
		}
		to, code := r.URL.Query().Get("to"), ""
		for _, m := range smtpSrv.Messages() {
			if slices.ContainsFunc(m.To, func(a string) bool { return strings.EqualFold(a, to) }) {
				if c := codeLine.FindStringSubmatch(m.Data); c != nil {
					code = c[1]
				}
			}
		}
		if code == "" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, code)
	}))
	t.Cleanup(mailbox.Close)
	// A short revalidation period: a password change closes sockets at once.
	srv := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_ADMIN_SECRET=kotlin-sdk-admin-secret-1", "KILN_WS_REVALIDATE=200ms",
		"KILN_SMTP_ADDR="+smtpSrv.Addr,
		"KILN_AUTH_OIDC_PROVIDERS=test|"+idp.URL+"|kotlin-app", "KILN_AUTH_REDIRECT_CLIENTS=test|kotlin-web|kotlin-secret",
		"KILN_AUTH_REDIRECT_URIS=io.kiln.test:/auth")
	// Push on a server of its own (its own sign-up budget per address).
	pushSrv := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(),
		"KILN_PUSH_FCM_CREDENTIALS_FILE="+creds, "KILN_PUSH_FCM_ENDPOINT="+fcm.URL, "KILN_PUSH_CA_FILE="+fcm.CAFile(t),
		"KILN_JOBS_POLL_INTERVAL=50ms")
	allow := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_OPERATIONS=allowlist")
	env := []string{"KILN_URL=" + srv.URL + "/graphql", "KILN_ALLOWLIST_URL=" + allow.URL + "/graphql",
		"KILN_TEST_ID_TOKEN=" + idToken, "KILN_TEST_ID_NONCE=kotlin-nonce", "KILN_TEST_MAILBOX=" + mailbox.URL, "KILN_PUSH_URL=" + pushSrv.URL + "/graphql"}
	// Files on S3 too when there is a test S3 server (eval "$(.ci/s3.sh start)").
	skips := 1 // filesOnS3 without one
	if ep := os.Getenv("KILN_TEST_S3_ENDPOINT"); ep != "" {
		b := make([]byte, 6)
		rand.Read(b)
		s3 := kilntest.Start(t, bin, "KILN_DATA_DIR="+t.TempDir(), "KILN_S3_BUCKET=kiln-sdk-"+hex.EncodeToString(b), "KILN_S3_ENDPOINT="+ep,
			"KILN_S3_ACCESS_KEY="+os.Getenv("KILN_TEST_S3_ACCESS_KEY"), "KILN_S3_SECRET_KEY="+os.Getenv("KILN_TEST_S3_SECRET_KEY"), "KILN_S3_PATH_STYLE=true")
		env = append(env, "KILN_S3_URL="+s3.URL+"/graphql")
		skips = 0
	} else if os.Getenv("KILN_REQUIRE_S3") == "1" {
		t.Fatal("KILN_REQUIRE_S3=1 but KILN_TEST_S3_ENDPOINT is not set (eval \"$(.ci/s3.sh start)\")")
	}

	dir := filepath.Join(t.TempDir(), "kotlin")
	if err := os.CopyFS(dir, os.DirFS("kotlin")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "target"))
	// The example's tests, beside the SDK's own.
	testDir := filepath.Join(dir, "src", "test", "kotlin", "io", "kiln", "sdk")
	exampleTests, _ := filepath.Glob("kotlin-tests/*.kt")
	if len(exampleTests) < 2 {
		t.Fatalf("kotlin-tests has %d Kotlin files", len(exampleTests))
	}
	for _, p := range exampleTests {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testDir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The README's examples compile against the generated API.
	examples, err := readmeExamples("kotlin/README.md", "kotlin")
	if err != nil {
		t.Fatal(err)
	}
	// So do the main README's (its SDK section).
	main, err := sectionBlocks("../README.md", "## Client SDKs", "kotlin")
	if err != nil {
		t.Fatal(err)
	}
	src := "package io.kiln.sdk\n\nimport kotlinx.coroutines.CoroutineScope\nimport kotlinx.coroutines.launch\nimport kotlinx.serialization.json.JsonObject\n\n" +
		"// The code blocks of README.md, compiled (never run) by TestKotlinSDKLive.\n@Suppress(\"UNUSED_VARIABLE\", \"unused\")\ninternal suspend fun readmeExamples(scope: CoroutineScope) {\n" + examples + "}\n" +
		"\n// The Kotlin blocks of the main README's SDK section.\n@Suppress(\"UNUSED_VARIABLE\", \"unused\")\ninternal suspend fun mainReadmeExamples(profileID: String, jpegBytes: ByteArray) {\n" + main + "}\n"
	if err := os.WriteFile(filepath.Join(testDir, "ReadmeExamples.kt"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("mvn", "-B", "-q", "-Dstyle.color=never", "test")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("mvn test took %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("mvn test: %v\n%s", err, out)
	}

	// The tests ran (none skipped for want of a server).
	var ran, skipped int
	reports, _ := filepath.Glob(filepath.Join(dir, "target", "surefire-reports", "TEST-*.xml"))
	for _, p := range reports {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			Tests   int `xml:"tests,attr"`
			Skipped int `xml:"skipped,attr"`
		}
		if err := xml.Unmarshal(b, &suite); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ran += suite.Tests
		skipped += suite.Skipped
	}
	if ran < 15 || skipped > skips {
		t.Fatalf("want the live JUnit tests to run: %d run, %d skipped (reports %v)\n%s", ran, skipped, reports, out)
	}
	t.Logf("%d JUnit tests passed against %s, %d skipped (files on S3 without KILN_TEST_S3_ENDPOINT)", ran-skipped, srv.URL, skipped)
}

// readmeExamples returns the code blocks of a README in lang after its
// "## Configure" heading, without import lines, indented for a function body.
func readmeExamples(path, lang string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	text := string(b)
	i := strings.Index(text, "## Configure")
	if i < 0 {
		return "", fmt.Errorf("%s has no Configure section", path)
	}
	var out strings.Builder
	n := 0
	for _, part := range strings.Split(text[i:], "```"+lang+"\n")[1:] {
		code, _, ok := strings.Cut(part, "```")
		if !ok {
			return "", fmt.Errorf("%s: unterminated code block", path)
		}
		for _, line := range strings.Split(code, "\n") {
			if strings.HasPrefix(line, "import ") || line == "" {
				continue
			}
			out.WriteString("    " + line + "\n")
		}
		n++
	}
	if n < 4 {
		return "", fmt.Errorf("%s: only %d %s blocks", path, n, lang)
	}
	return out.String(), nil
}

// sectionBlocks returns the code blocks in lang of the section of a
// Markdown file that starts at heading (up to the next "## " heading),
// indented for a function body; it fails when there are none.
func sectionBlocks(path, heading, lang string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	_, text, ok := strings.Cut(string(b), "\n"+heading)
	if !ok {
		return "", fmt.Errorf("%s has no %q section", path, heading)
	}
	text, _, _ = strings.Cut(text, "\n## ")
	var out strings.Builder
	for _, part := range strings.Split(text, "```"+lang+"\n")[1:] {
		code, _, _ := strings.Cut(part, "```")
		for _, line := range strings.Split(code, "\n") {
			if line != "" {
				out.WriteString("    " + line + "\n")
			}
		}
	}
	if out.Len() == 0 {
		return "", fmt.Errorf("%s: no %s blocks in %q", path, lang, heading)
	}
	return out.String(), nil
}

// TestKotlinSDKCompilesForTasks compiles the Kotlin SDK generated for the
// second schema (the golden tree of generator/testdata/tasks) with Maven.
func TestKotlinSDKCompilesForTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Maven; skipped with -short")
	}
	requireMaven(t)
	golden := "../generator/testdata/tasks/golden/clients/kotlin"
	dir := filepath.Join(t.TempDir(), "kotlin")
	err := filepath.WalkDir(golden, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(golden, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimSuffix(rel, ".golden"))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("mvn", "-B", "-q", "-Dstyle.color=never", "compile")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mvn compile of the tasks SDK: %v\n%s", err, out)
	}
	classes, _ := filepath.Glob(filepath.Join(dir, "target", "classes", "io", "kiln", "sdk", "TaskApi.class"))
	if len(classes) != 1 {
		t.Fatal("TaskApi.class was not compiled")
	}
	t.Logf("mvn compile (tasks) took %s", time.Since(start).Round(time.Millisecond))
}

// requireMaven skips without mvn and java, unless KILN_REQUIRE_KOTLIN=1.
func requireMaven(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mvn", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("KILN_REQUIRE_KOTLIN") == "1" {
				t.Fatalf("KILN_REQUIRE_KOTLIN=1 but %s is not on PATH: %v", tool, err)
			}
			t.Skipf("%s not found (%v): the Kotlin SDK is not compiled or tested; install a JDK 17+ and Maven, or set KILN_REQUIRE_KOTLIN=1 to make this fail", tool, err)
		}
	}
}

// TestKotlinSourcesHaveHeader checks every Kotlin source of the SDK
// (kotlin/, its own tests in src/test included) carries the generated-code
// header, and the example's hand-written tests (kotlin-tests/) do not: the
// SDK's directory holds nothing that a schema change could break.
func TestKotlinSourcesHaveHeader(t *testing.T) {
	n, tests := 0, 0
	for _, root := range []string{"kotlin", "kotlin-tests"} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".kt") || strings.HasSuffix(p, ".kts")) {
				return err
			}
			b, _ := os.ReadFile(p)
			generated := strings.HasPrefix(string(b), "// Code generated by kiln. DO NOT EDIT.")
			if generated != (root == "kotlin") {
				t.Errorf("%s: generated header %v in the wrong place", p, generated)
			}
			if strings.Contains(filepath.ToSlash(p), "/src/test/") {
				tests++
			}
			n++
			return nil
		})
	}
	if n < 5 || tests < 2 {
		t.Fatalf("only %d Kotlin sources, %d of them the SDK's own tests", n, tests)
	}
}
