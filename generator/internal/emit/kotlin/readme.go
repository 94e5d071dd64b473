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
	b.WriteString("## Install\n\nGradle: copy (or include as a module) this directory; `build.gradle.kts` builds the library (`./gradlew build`). Maven: `mvn install` with the `pom.xml` here, then depend on `io.kiln:kiln-sdk:0.1.0`. Requires Java 17 (Android: API 26+ for `java.time`).\n\n")
	b.WriteString("## Configure\n\n```kotlin\nimport io.kiln.sdk.*\n\nval kiln = KilnClient(KilnConfig(\n    url = \"https://api.example.com/graphql\",\n    sessionStore = InMemorySessionStore(), // implement SessionStore over EncryptedSharedPreferences in apps\n    persistedQueries = false, // true: custom operations go by sha256 (servers with KILN_OPERATIONS=allowlist accept only those)\n))\n```\n\n")
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
	b.WriteString("## Errors\n\nEvery call throws a `KilnException` subclass: `NotFound`, `Conflict`, `Validation(field, reason)`, `Unauthenticated`, `Forbidden`, `RateLimited(retryAfterSeconds)`, `Network`, `Server(code)`, `Decoding`.\n")
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
