package kotlin

import (
	"fmt"
	"strings"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/ir"
)

// example is a Kotlin literal for a required field in README examples.
func (g *gen) example(f clientapi.Field) string {
	var v string
	switch f.Type.Kind {
	case ir.ID:
		v = `"00000000-0000-4000-8000-000000000001"`
	case ir.Int:
		v = "1"
	case ir.Float:
		v = "1.0"
	case ir.Boolean:
		v = "true"
	case ir.Time:
		v = "java.time.Instant.now()"
	case ir.JSON:
		v = "JsonObject(emptyMap())"
	case ir.EnumK:
		for _, e := range g.api.Enums {
			if e.Name == f.Type.Enum {
				v = e.Name + "." + e.Values[0]
			}
		}
	default:
		v = `"Hello from Kotlin"`
	}
	if f.Type.List {
		return "listOf(" + v + ")"
	}
	return v
}

func readme(api *clientapi.API) string {
	g := &gen{api: api}
	var b strings.Builder
	b.WriteString("# Kiln Kotlin SDK\n\nTyped Kotlin/JVM client for this Kiln backend, generated from `schema/*.graphql` by `make generate` (do not edit: regenerate). Usable from Android and the JVM: kotlinx.serialization models, coroutines (`suspend` calls, `Flow` subscriptions), OkHttp for HTTP and WebSocket.\n\n")
	b.WriteString(installDoc)
	b.WriteString("## Configure\n\n```kotlin\nimport io.kiln.sdk.*\n\nval kiln = KilnClient(KilnConfig(\n    url = \"https://api.example.com/graphql\",\n    sessionStore = InMemorySessionStore(), // FileSessionStore(path) on the JVM, your own SessionStore on Android (below)\n    persistedQueries = false, // true: custom operations go by sha256 (servers with KILN_OPERATIONS=allowlist accept only those)\n))\n```\n\n")
	b.WriteString("## Sign in\n\n```kotlin\nkiln.auth.signUp(\"ada@example.com\", \"correct horse battery\")\nkiln.auth.signIn(\"ada@example.com\", \"correct horse battery\")\nkiln.auth.signInAnonymously()\nval me: User? = kiln.auth.currentUser\nkiln.auth.signOut()\n```\n\nAccess tokens are refreshed before they expire (`KilnConfig.refreshBefore`) and once more when a call answers UNAUTHENTICATED; when the refresh token is no longer valid the session is cleared and calls throw `KilnException.Unauthenticated`.\n\n")
	m := api.Example()
	if m != nil {
		var args []string
		for _, f := range m.RequiredCreate() {
			args = append(args, fmt.Sprintf("%s = %s", ident(f.Name), g.example(f)))
		}
		fmt.Fprintf(&b, "## Query and write\n\n```kotlin\nval created: %[4]s = kiln.%[2]s.create(Create%[1]sInput(%[3]s))\nval one: %[4]s? = kiln.%[2]s.get(created.id)\n", m.Name, ident(m.List), strings.Join(args, ", "), g.typeName(m))
		where := ""
		if s := m.FirstString(); s != nil {
			where = fmt.Sprintf("where = %sWhere { %sContains = \"Hello\" }, ", clientapi.LowerFirst(m.Name), s.Name)
		}
		fmt.Fprintf(&b, "val page: Page<%[4]s> = kiln.%[2]s.list(%[3]sorderBy = listOf(%[1]sOrder(%[1]sOrderField.CREATED_AT, OrderDirection.DESC)), first = 20)\nval next = kiln.%[2]s.list(first = 20, after = page.nextCursor)\nkiln.%[2]s.listAll(pageSize = 100).collect { println(it.id) }\n", m.Name, ident(m.List), where, g.typeName(m))
		fmt.Fprintf(&b, "\ntry {\n    kiln.%[2]s.update(created.id, Update%[1]sInput(version = created.version))\n} catch (e: KilnException.Conflict) {\n    // someone else changed it: reload and retry\n}\nkiln.%[2]s.delete(created.id)\n```\n\nUpdate inputs tell absent from null: fields left `null` / `Patch.Absent` are unchanged, `Patch.Null` clears a nullable field, `Patch.Value(x)` (or `Patch.of(x)`) sets it.\n\n", m.Name, ident(m.List))
		if len(m.Events) > 0 {
			fmt.Fprintf(&b, "## Subscribe\n\n```kotlin\nval job = scope.launch {\n    kiln.%s.%s().collect { record -> println(\"new: ${record.id}\") }\n}\n```\n\nEach subscription keeps a graphql-transport-ws connection, reconnects with backoff and resubscribes by itself (with a fresh access token). Cancel the coroutine to unsubscribe.\n\n", ident(m.List), m.Events[0])
		}
	}
	b.WriteString("## Upload files\n\n```kotlin\nval file: KilnFile = kiln.files.upload(java.io.File(\"photo.jpg\"), contentType = \"image/jpeg\") { sent, total -> println(\"$sent/$total\") }\nval small: KilnFile = kiln.files.uploadSmall(ByteArray(3), filename = \"dot.png\", contentType = \"image/png\") // one multipart request\n")
	if fm, ff, output := api.FileExample(); fm != nil {
		var args []string
		for _, f := range fm.RequiredCreate() {
			args = append(args, fmt.Sprintf("%s = %s", ident(f.Name), g.example(f)))
		}
		in := clientapi.FileInputName(ff.Name, ff.List)
		set, clear, comment := "listOf(file.id)", "emptyList()", "replaces the whole list"
		if !ff.List {
			set = "file.id"
			if ff.Nullable {
				clear, comment = "Patch.Null", "detaches the file"
			} else {
				clear, comment = "file.id", "replaces the file"
			}
		}
		fmt.Fprintf(&b, "val withFile: %[1]s = kiln.%[2]s.create(Create%[3]sInput(%[4]s%[5]s = %[6]s))\n", g.typeName(fm), ident(fm.List), fm.Name, strings.Join(append(args, ""), ", "), in, set)
		if output {
			t := "KilnFile?"
			if ff.List {
				t = "List<KilnFile>"
			} else if !ff.Nullable {
				t = "KilnFile"
			}
			fmt.Fprintf(&b, "val attached: %s = withFile.%s\n", t, ident(ff.Name))
		}
		fmt.Fprintf(&b, "kiln.%[1]s.update(withFile.id, Update%[2]sInput(%[3]s = %[4]s)) // %[5]s\n", ident(fm.List), fm.Name, in, clear, comment)
	}
	b.WriteString("val bytes: ByteArray = kiln.files.download(file.id)\nval url: String = kiln.files.url(file.id, expiresInSeconds = 600)\n\ntry {\n    kiln.files.upload(ByteArray(3), filename = \"a.exe\", contentType = \"application/x-msdownload\")\n} catch (e: KilnException.Validation) {\n    println(e.reason) // UNSUPPORTED_CONTENT_TYPE, TOO_LARGE, ...\n}\n```\n\n`upload` sends the bytes straight to storage with the ticket of `createUpload`, then calls `completeUpload`; `uploadSmall` sends a small file through the GraphQL endpoint instead (`uploadFile`, up to the server's `KILN_MAX_MULTIPART_SIZE`). Attach an upload by passing its id in a model input: `avatarID` for a `File` field (in updates `Patch.Null` detaches it), `attachmentIDs` for a `[File!]!` field (an update replaces the whole list, in order). Models carry their files (`KilnFile` with a signed `url`) in every read; a file field with its own `@auth` rules, like any field with rules, is left out of the model and its default selection: read it with an operation in `schema/operations/` (a typed function on `kiln.operations`). Upload errors are `KilnException.Validation` with `reason` (`extensions.reason`); another user's file id answers `NotFound`, and `kiln.files.get` of a file the viewer may not see returns null.\n\n")
	if len(api.Operations) > 0 {
		b.WriteString("## Custom operations\n\nEach operation in `schema/operations/*.graphql` is a function on `kiln.operations` returning a typed result (optional variables are optional parameters):\n\n```kotlin\n")
		for _, op := range api.Operations {
			call, ok := g.opCall(op)
			if !ok {
				fmt.Fprintf(&b, "// kiln.operations.%s(...): %sResult\n", clientapi.LowerFirst(op.Name), op.Name)
				continue
			}
			if op.Kind == "subscription" {
				fmt.Fprintf(&b, "kiln.operations.%s.collect { data: %sResult -> println(data) }\n", call, op.Name)
			} else {
				fmt.Fprintf(&b, "val %s: %sResult = kiln.operations.%s\n", ident(clientapi.LowerFirst(op.Name)), op.Name, call)
			}
		}
		b.WriteString("```\n\n")
	}
	b.WriteString(sessionsDoc)
	b.WriteString(closeDoc)
	b.WriteString("## Errors\n\nEvery call throws a `KilnException` subclass: `NotFound`, `Conflict`, `Validation(field, reason)`, `Unauthenticated`, `Forbidden`, `RateLimited(retryAfterSeconds)`, `Network`, `Server(code)`, `Decoding`, `Closed` (the client was closed).\n\n")
	b.WriteString(testsDoc)
	return b.String()
}

// opCall is a call of a custom operation with example values for its
// required variables; false when a required variable is not a scalar.
func (g *gen) opCall(op *clientapi.Operation) (string, bool) {
	var args []string
	for _, v := range op.Variables {
		if v.Optional() {
			continue
		}
		if v.Type.Elem != nil || v.Type.Class != "scalar" {
			return "", false
		}
		var k ir.Kind
		switch v.Type.Named {
		case "ID", "Int", "Float", "Boolean", "Time":
			k = ir.Kind(v.Type.Named)
		default:
			k = ir.String
		}
		args = append(args, fmt.Sprintf("%s = %s", ident(v.Name), g.example(clientapi.Field{Type: clientapi.Type{Kind: k}})))
	}
	return fmt.Sprintf("%s(%s)", ident(clientapi.LowerFirst(op.Name)), strings.Join(args, ", ")), true
}

// installDoc says how to build, install and publish the SDK.
const installDoc = "## Install and publish\n\n" +
	"Requires Java 17 (Android: API 26+, for `java.time` and `java.nio.file`). The build is Maven's `pom.xml` here; the artifact is `io.kiln:kiln-sdk:0.1.0`.\n\n" +
	"```sh\n" +
	"mvn install   # builds, runs the SDK's own tests, installs into ~/.m2 for Maven and Gradle builds on this machine\n" +
	"mvn deploy -Dkiln.sdk.repository=https://maven.example.com/releases   # publishes to your repository\n" +
	"```\n\n" +
	"`mvn deploy` publishes to the `distributionManagement` repository of the `pom.xml`, whose URL is the property `kiln.sdk.repository` (by default `target/repository`, so that nothing is published by accident) and whose id is `kiln-sdk`: put its credentials in `~/.m2/settings.xml` as `<server><id>kiln-sdk</id><username>...</username><password>...</password></server>`. " +
	"The generator writes version 0.1.0, and a release repository takes each version once: to publish a new one, set it in the `pom.xml` first (the next `make generate` puts 0.1.0 back, so do it in your publishing job):\n\n" +
	"```sh\n" +
	"mvn versions:set -DnewVersion=1.1.0 -DgenerateBackupPoms=false\n" +
	"mvn deploy -Dkiln.sdk.repository=https://maven.example.com/releases\n" +
	"```\n\n" +
	"In a Gradle (or Android) project, depend on the published artifact (its dependencies, kotlinx.serialization, coroutines and OkHttp, come with it):\n\n" +
	"```kts\n" +
	"repositories {\n    mavenLocal() // after mvn install; or maven(\"https://maven.example.com/releases\")\n    mavenCentral()\n}\n" +
	"dependencies {\n    implementation(\"io.kiln:kiln-sdk:0.1.0\")\n}\n" +
	"```\n\n" +
	"There is no Gradle build in this directory: a Gradle wrapper downloads Gradle itself from outside Maven Central, which Kiln's build machines cannot reach, so a Gradle build could not be tested; an untested one is not shipped. The Maven build is the one the tests run.\n\n"

// sessionsDoc explains session stores: in memory, in a file, on Android.
const sessionsDoc = "## Keep the session\n\n" +
	"The client loads the session from `KilnConfig.sessionStore` once, when it is constructed, keeps it in memory, and saves it on every change: sign-up and sign-in, a refresh, `linkAccount` and `changePassword`; sign-out clears it. " +
	"`InMemorySessionStore` (the default) forgets it when the process ends. `FileSessionStore(path)` keeps it in a JSON file on the JVM (servers, desktop, command-line tools): every save writes a temporary file created owner-only (`rw-------` where the file system has POSIX permissions), forces it to disk and renames it over the file, so a crash never leaves half a session; a missing directory is created owner-only.\n\n" +
	"```kotlin\n" +
	"val desktop = KilnClient(KilnConfig(\n" +
	"    url = \"https://api.example.com/graphql\",\n" +
	"    sessionStore = FileSessionStore(java.nio.file.Paths.get(System.getProperty(\"user.home\"), \".myapp\", \"session.json\")),\n" +
	"))\n" +
	"val signedIn: Boolean = desktop.auth.session != null // loaded from the file\n" +
	"```\n\n" +
	"A `SessionStore` is three functions (`load`, `save`, `clear`), called from any thread: implement it over your platform's secure storage. " +
	"An exception from `save` or `clear` is thrown by the call that changed the session (the client keeps the new session in memory all the same); one from `load` at construction counts as no session. " +
	"On Android, for example over EncryptedSharedPreferences (`androidx.security:security-crypto`; DataStore with Tink works the same way). This sample is not compiled by the SDK's tests:\n\n" +
	"```kt\n" +
	"import android.content.Context\n" +
	"import androidx.security.crypto.EncryptedSharedPreferences\n" +
	"import androidx.security.crypto.MasterKey\n" +
	"import io.kiln.sdk.*\n\n" +
	"class EncryptedPrefsSessionStore(context: Context) : SessionStore {\n" +
	"    private val prefs = EncryptedSharedPreferences.create(\n" +
	"        context,\n" +
	"        \"kiln_session\",\n" +
	"        MasterKey.Builder(context).setKeyScheme(MasterKey.KeyScheme.AES256_GCM).build(),\n" +
	"        EncryptedSharedPreferences.PrefKeyEncryptionScheme.AES256_SIV,\n" +
	"        EncryptedSharedPreferences.PrefValueEncryptionScheme.AES256_GCM,\n" +
	"    )\n\n" +
	"    override fun load(): Session? = prefs.getString(\"session\", null)?.let {\n" +
	"        runCatching { KilnJson.decodeFromString(Session.serializer(), it) }.getOrNull()\n" +
	"    }\n\n" +
	"    override fun save(session: Session) {\n" +
	"        prefs.edit().putString(\"session\", KilnJson.encodeToString(Session.serializer(), session)).apply()\n" +
	"    }\n\n" +
	"    override fun clear() {\n" +
	"        prefs.edit().remove(\"session\").apply()\n" +
	"    }\n" +
	"}\n\n" +
	"// Construct the client off the main thread (it reads the store once), e.g. in your Application:\n" +
	"val kiln = KilnClient(KilnConfig(url = \"https://api.example.com/graphql\", sessionStore = EncryptedPrefsSessionStore(context)))\n" +
	"```\n\n"

// closeDoc explains KilnClient.close.
const closeDoc = "## Close\n\n" +
	"`KilnClient` is `java.io.Closeable`: close it when done, e.g. at the end of a JVM program's `main` or a server's shutdown. " +
	"`close()` closes the subscriptions' WebSockets (their flows end normally: `collect` returns, no exception) and, when the client created its OkHttpClient (`KilnConfig.httpClient` left null), cancels its calls, shuts down its dispatcher's threads and evicts its pooled connections, so the JVM exits at once instead of waiting a minute for OkHttp's idle threads. " +
	"An OkHttpClient you passed in `KilnConfig.httpClient` stays yours and is left running (only the WebSockets the SDK opened on it are closed). " +
	"After `close()` every call throws `KilnException.Closed`; the session stays in the store for the next client. Closing twice does nothing.\n\n" +
	"```kotlin\n" +
	"KilnClient(\"https://api.example.com/graphql\").use { client ->\n" +
	"    client.auth.signInAnonymously()\n" +
	"} // closed here\n" +
	"kiln.close()\n" +
	"```\n\n"

// testsDoc says what the SDK's own tests are.
const testsDoc = "## Tests\n\n" +
	"`src/test` holds the SDK's own tests, generated with it (`mvn test`, and every `mvn install`): error mapping, times, pages, the file session store, the session's load and saves, `close()` (one test runs a JVM program in a child JVM and checks no thread is left to keep it alive). " +
	"They use types of their own and a small server they start on 127.0.0.1, never the app's models, so they pass whatever the schema holds and need no network.\n"
