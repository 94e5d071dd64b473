package swift

import (
	"fmt"
	"strings"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/ir"
)

// example is a Swift literal for a required field in README examples.
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
		v = "Date()"
	case ir.JSON:
		v = ".object([:])"
	case ir.EnumK:
		if e := g.enumByName[f.Type.Enum]; e != nil {
			v = "." + caseName(e.Values[0])
		}
	default:
		v = `"Hello from Swift"`
	}
	if f.Type.List {
		return "[" + v + "]"
	}
	return v
}

func readme(g *gen) string {
	api := g.api
	var b strings.Builder
	b.WriteString("# Kiln Swift SDK\n\nTyped Swift client for this Kiln backend, generated from `schema/*.graphql` by `make generate` (do not edit: regenerate). A Swift package (Swift 5.9+, iOS 15+ / macOS 12+) that uses Foundation only: URLSession async/await, URLSessionWebSocketTask for subscriptions, Codable models.\n\n")
	b.WriteString("## Install\n\nIn Xcode: File > Add Package Dependencies > Add Local… and pick this directory (or push it to its own repository and add that URL). In a `Package.swift`:\n\n```swift\n.package(path: \"../clients/swift\"),\n// and in your target:\n.product(name: \"Kiln\", package: \"Kiln\"),\n```\n\n")
	b.WriteString("## Configure\n\n```swift\nimport Kiln\n\nlet kiln = KilnClient(config: KilnConfig(\n    url: URL(string: \"https://api.example.com/graphql\")!,\n    sessionStore: InMemorySessionStore(), // implement SessionStore over the Keychain in apps\n    persistedQueries: false // true: custom operations go by sha256 (servers with KILN_OPERATIONS=allowlist accept only those)\n))\n```\n\n")
	b.WriteString("## Sign in\n\n```swift\ntry await kiln.auth.signUp(email: \"ada@example.com\", password: \"correct horse battery\")\ntry await kiln.auth.signIn(email: \"ada@example.com\", password: \"correct horse battery\")\ntry await kiln.auth.signInAnonymously()\nlet me: User? = kiln.auth.currentUser\ntry await kiln.auth.signOut()\n```\n\nAccess tokens are refreshed before they expire (`KilnConfig.refreshBefore`) and once more when a call answers UNAUTHENTICATED; when the refresh token is no longer valid the session is cleared and calls throw `KilnError.unauthenticated`.\n\n")
	if m := api.Example(); m != nil {
		var args []string
		for _, f := range m.RequiredCreate() {
			args = append(args, fmt.Sprintf("%s: %s", f.Name, g.example(f)))
		}
		fmt.Fprintf(&b, "## Query and write\n\n```swift\nlet created: %[4]s = try await kiln.%[2]s.create(Create%[1]sInput(%[3]s))\nlet one: %[4]s? = try await kiln.%[2]s.get(id: created.id)\n", m.Name, m.List, strings.Join(args, ", "), g.typeName(m))
		where := ""
		if s := m.FirstString(); s != nil {
			where = fmt.Sprintf("where: %sWhereInput { $0.%sContains = \"Hello\" }, ", m.Name, s.Name)
		}
		fmt.Fprintf(&b, "let page: Page<%[4]s> = try await kiln.%[2]s.list(%[3]sorderBy: [%[1]sOrder(.createdAt, .desc)], first: 20)\nlet next = try await kiln.%[2]s.list(first: 20, after: page.nextCursor)\nfor try await record in kiln.%[2]s.listAll(pageSize: 100) { print(record.id) }\n", m.Name, m.List, where, g.typeName(m))
		fmt.Fprintf(&b, "\ndo {\n    _ = try await kiln.%[2]s.update(id: created.id, Update%[1]sInput(version: created.version))\n} catch KilnError.conflict {\n    // someone else changed it: reload and retry\n}\ntry await kiln.%[2]s.delete(id: created.id)\n```\n\nUpdate inputs tell absent from null: fields left `nil` / `.absent` are unchanged, `.null` clears a nullable field, `.value(x)` sets it.\n\n", m.Name, m.List)
		if len(m.Events) > 0 {
			fmt.Fprintf(&b, "## Subscribe\n\n```swift\nlet task = Task {\n    for try await record in kiln.%s.%s() {\n        print(\"new:\", record.id)\n    }\n}\n// later: task.cancel() unsubscribes\n```\n\nEach subscription keeps a graphql-transport-ws connection, reconnects with backoff and resubscribes by itself (with a fresh access token).\n\n", m.List, m.Events[0])
		}
	}
	b.WriteString("## Upload files\n\n```swift\nlet file: KilnFile = try await kiln.files.upload(fileURL: photoURL, contentType: \"image/jpeg\") { sent, total in\n    print(sent, \"/\", total)\n}\nlet small: KilnFile = try await kiln.files.uploadSmall(data: Data([1, 2, 3]), filename: \"dot.png\", contentType: \"image/png\") // one multipart request\n")
	if fm, ff, output := api.FileExample(); fm != nil {
		var args []string
		for _, f := range fm.RequiredCreate() {
			args = append(args, fmt.Sprintf("%s: %s", f.Name, g.example(f)))
		}
		in := clientapi.FileInputName(ff.Name, ff.List)
		set, clear, comment := "[file.id]", "[]", "replaces the whole list"
		if !ff.List {
			set = "file.id"
			if ff.Nullable {
				clear, comment = ".null", "detaches the file"
			} else {
				clear, comment = "file.id", "replaces the file"
			}
		}
		fmt.Fprintf(&b, "let withFile: %[1]s = try await kiln.%[2]s.create(Create%[3]sInput(%[4]s%[5]s: %[6]s))\n", g.typeName(fm), fm.List, fm.Name, strings.Join(append(args, ""), ", "), in, set)
		if output {
			t := "KilnFile?"
			if ff.List {
				t = "[KilnFile]"
			} else if !ff.Nullable {
				t = "KilnFile"
			}
			fmt.Fprintf(&b, "let attached: %s = withFile.%s\n", t, ff.Name)
		}
		fmt.Fprintf(&b, "_ = try await kiln.%[1]s.update(id: withFile.id, Update%[2]sInput(%[3]s: %[4]s)) // %[5]s\n", fm.List, fm.Name, in, clear, comment)
	}
	b.WriteString("let bytes: Data = try await kiln.files.download(id: file.id)\nlet url: URL = try await kiln.files.url(id: file.id, expiresIn: 600)\n\ndo {\n    _ = try await kiln.files.upload(data: Data([1, 2, 3]), filename: \"a.exe\", contentType: \"application/x-msdownload\")\n} catch KilnError.validation(_, _, let reason) {\n    print(reason ?? \"\") // UNSUPPORTED_CONTENT_TYPE, TOO_LARGE, ...\n}\n```\n\n`upload` sends the bytes straight to storage with the ticket of `createUpload`, then calls `completeUpload`; `uploadSmall` sends a small file through the GraphQL endpoint instead (`uploadFile`, up to the server's `KILN_MAX_MULTIPART_SIZE`). Attach an upload by passing its id in a model input: `avatarID` for a `File` field (in updates `.null` detaches it), `attachmentIDs` for a `[File!]!` field (an update replaces the whole list, in order). Models carry their files (`KilnFile` with a signed `url`) in every read; a file field with its own `@auth` rules, like any field with rules, is left out of the model and its default selection: read it with an operation in `schema/operations/` (a typed function on `kiln.operations`). Upload errors are `KilnError.validation` with `reason` (`extensions.reason`); another user's file id answers `.notFound`, and `kiln.files.get(id:)` of a file the viewer may not see returns nil.\n\n")
	if len(api.Operations) > 0 {
		b.WriteString("## Custom operations\n\nEach operation in `schema/operations/*.graphql` is a function on `kiln.operations` returning a typed result (optional variables are optional parameters):\n\n```swift\n")
		for _, op := range api.Operations {
			call, ok := g.opCall(op)
			if !ok {
				fmt.Fprintf(&b, "// kiln.operations.%s(%s) -> %sResult\n", clientapi.LowerFirst(op.Name), strings.Join(g.opParams(op), ", "), op.Name)
				continue
			}
			if op.Kind == "subscription" {
				fmt.Fprintf(&b, "for try await data in kiln.operations.%s { print(data) }\n", call)
			} else {
				fmt.Fprintf(&b, "let %s: %sResult = try await kiln.operations.%s\n", ident(clientapi.LowerFirst(op.Name)), op.Name, call)
			}
		}
		b.WriteString("```\n\n")
	}
	b.WriteString("## Errors\n\nEvery call throws a `KilnError`: `.notFound`, `.conflict`, `.validation(field:message:reason:)`, `.unauthenticated`, `.forbidden`, `.rateLimited(retryAfter:message:)`, `.network`, `.server(code:message:)`, `.decoding`.\n")
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
		args = append(args, fmt.Sprintf("%s: %s", v.Name, g.example(clientapi.Field{Type: clientapi.Type{Kind: k}})))
	}
	return fmt.Sprintf("%s(%s)", clientapi.LowerFirst(op.Name), strings.Join(args, ", ")), true
}
