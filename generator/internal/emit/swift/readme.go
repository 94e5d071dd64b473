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
	b.WriteString("# Kiln Swift SDK\n\nTyped Swift client for this Kiln backend, generated from `schema/*.graphql` by `make generate` (do not edit: regenerate). A Swift package (Swift 5.9+, iOS 15+ / macOS 12+, Linux) that uses Foundation only: URLSession async/await, URLSessionWebSocketTask for subscriptions (or a WebSocket you plug in), Codable models. It compiles in Swift 6 language mode.\n\n")
	b.WriteString(installDoc)
	b.WriteString("## Configure\n\n```swift\nimport Kiln\n\nlet kiln = KilnClient(config: KilnConfig(\n    url: URL(string: \"https://api.example.com/graphql\")!,\n    sessionStore: InMemorySessionStore(), // KeychainSessionStore() in apps, FileSessionStore(url:) on Linux (below)\n    persistedQueries: false // true: custom operations go by sha256 (servers with KILN_OPERATIONS=allowlist accept only those)\n))\n```\n\n")
	b.WriteString("## Sign in\n\n```swift\ntry await kiln.auth.signUp(email: \"ada@example.com\", password: \"correct horse battery\")\ntry await kiln.auth.signIn(email: \"ada@example.com\", password: \"correct horse battery\")\ntry await kiln.auth.signInAnonymously()\nlet me: User? = kiln.auth.currentUser\ntry await kiln.auth.signOut()\n```\n\nAccess tokens are refreshed before they expire (`KilnConfig.refreshBefore`) and once more when a call answers UNAUTHENTICATED; when the refresh token is no longer valid the session is cleared and calls throw `KilnError.unauthenticated`.\n\n")
	if m := api.Example(); m != nil {
		var args []string
		for _, f := range m.RequiredCreate() {
			args = append(args, fmt.Sprintf("%s: %s", f.Name, g.example(f)))
		}
		list := strings.Trim(clientProp(m), "`")
		fmt.Fprintf(&b, "## Query and write\n\n```swift\nlet created: %[4]s = try await kiln.%[2]s.create(Create%[1]sInput(%[3]s))\nlet one: %[4]s? = try await kiln.%[2]s.get(id: created.id)\n", m.Name, list, strings.Join(args, ", "), g.typeName(m))
		where := ""
		if s := m.FirstString(); s != nil {
			where = fmt.Sprintf("where: %sWhereInput { $0.%sContains = \"Hello\" }, ", m.Name, s.Name)
		}
		fmt.Fprintf(&b, "let page: Page<%[4]s> = try await kiln.%[2]s.list(%[3]sorderBy: [%[1]sOrder(.createdAt, .desc)], first: 20)\nlet next = try await kiln.%[2]s.list(first: 20, after: page.nextCursor)\nfor try await record in kiln.%[2]s.listAll(pageSize: 100) { print(record.id) }\n", m.Name, list, where, g.typeName(m))
		fmt.Fprintf(&b, "\ndo {\n    _ = try await kiln.%[2]s.update(id: created.id, Update%[1]sInput(version: created.version))\n} catch KilnError.conflict {\n    // someone else changed it: reload and retry\n}\ntry await kiln.%[2]s.delete(id: created.id)\n```\n\nUpdate inputs tell absent from null: fields left `nil` / `.absent` are unchanged, `.null` clears a nullable field, `.value(x)` sets it.\n\n", m.Name, list)
		if len(m.Events) > 0 {
			fmt.Fprintf(&b, "## Subscribe\n\n```swift\nlet task = Task {\n    do {\n        for try await record in kiln.%s.%s() {\n            print(\"new:\", record.id)\n        }\n    } catch KilnError.unsupported(let message) {\n        print(message) // no WebSockets here: plug in a socket (below)\n    } catch {\n        print(\"the subscription ended:\", error)\n    }\n}\n// later: task.cancel() unsubscribes\n```\n\n", list, m.Events[0])
		}
	}
	b.WriteString(subscriptionsDoc)
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
		fmt.Fprintf(&b, "let withFile: %[1]s = try await kiln.%[2]s.create(Create%[3]sInput(%[4]s%[5]s: %[6]s))\n", g.typeName(fm), strings.Trim(clientProp(fm), "`"), fm.Name, strings.Join(append(args, ""), ", "), in, set)
		if output {
			t := "KilnFile?"
			if ff.List {
				t = "[KilnFile]"
			} else if !ff.Nullable {
				t = "KilnFile"
			}
			fmt.Fprintf(&b, "let attached: %s = withFile.%s\n", t, ff.Name)
		}
		fmt.Fprintf(&b, "_ = try await kiln.%[1]s.update(id: withFile.id, Update%[2]sInput(%[3]s: %[4]s)) // %[5]s\n", strings.Trim(clientProp(fm), "`"), fm.Name, in, clear, comment)
	}
	b.WriteString("let bytes: Data = try await kiln.files.download(id: file.id)\nlet url: URL = try await kiln.files.url(id: file.id, expiresIn: 600)\n\ndo {\n    _ = try await kiln.files.upload(data: Data([1, 2, 3]), filename: \"a.exe\", contentType: \"application/x-msdownload\")\n} catch KilnError.validation(_, _, let reason) {\n    print(reason ?? \"\") // UNSUPPORTED_CONTENT_TYPE, TOO_LARGE, ...\n}\n```\n\n`upload` sends the bytes straight to storage with the ticket of `createUpload`, then calls `completeUpload`; `uploadSmall` sends a small file through the GraphQL endpoint instead (`uploadFile`, up to the server's `KILN_MAX_MULTIPART_SIZE`). Attach an upload by passing its id in a model input: `avatarID` for a `File` field (in updates `.null` detaches it), `attachmentIDs` for a `[File!]!` field (an update replaces the whole list, in order). Models carry their files (`KilnFile` with a signed `url`) in every read; a file field with its own `@auth` rules, like any field with rules, is left out of the model and its default selection: read it with an operation in `schema/operations/` (a typed function on `kiln.operations`). Upload errors are `KilnError.validation` with `reason` (`extensions.reason`); another user's file id answers `.notFound`, and `kiln.files.get(id:)` of a file the viewer may not see returns nil.\n\n")
	if len(api.Operations) > 0 {
		b.WriteString("## Custom operations\n\nEach operation in `schema/operations/*.graphql` is a function on `kiln.operations` returning a typed result (optional variables are optional parameters):\n\n```swift\n")
		for _, op := range api.Operations {
			call, ok := g.opCall(op)
			if !ok {
				fmt.Fprintf(&b, "// kiln.operations.%s(%s) -> %s\n", opFunc(op), strings.Join(g.opParams(op), ", "), g.resultName(op))
				continue
			}
			if op.Kind == "subscription" {
				fmt.Fprintf(&b, "for try await data in kiln.operations.%s { print(data) }\n", call)
			} else {
				fmt.Fprintf(&b, "let %s: %s = try await kiln.operations.%s\n", ident(clientapi.LowerFirst(op.Name)+"Result"), g.resultName(op), call)
			}
		}
		b.WriteString("```\n\n")
	}
	b.WriteString(sessionsDoc)
	b.WriteString(closeDoc)
	b.WriteString("## Errors\n\nEvery call throws a `KilnError`: `.notFound`, `.conflict`, `.validation(field:message:reason:)`, `.unauthenticated`, `.forbidden`, `.rateLimited(retryAfter:message:)`, `.network`, `.server(code:message:)`, `.decoding`, `.unsupported`, `.closed` (the client was closed). Session stores throw `KilnSessionStoreError`.\n\n")
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
		args = append(args, fmt.Sprintf("%s: %s", v.Name, g.example(clientapi.Field{Type: clientapi.Type{Kind: k}})))
	}
	return fmt.Sprintf("%s(%s)", opFunc(op), strings.Join(args, ", ")), true
}

// subscriptionsDoc explains the subscriptions' connection: its behaviour,
// its state, and plugging in another WebSocket.
const subscriptionsDoc = "## Subscriptions: the connection\n\n" +
	"All subscriptions of a `KilnClient` share one graphql-transport-ws WebSocket, opened for the first and closed after the last. " +
	"A dropped connection reconnects with backoff (`KilnConfig.reconnect`: 0.5s doubling up to 30s, with jitter) and subscribes again; events published meanwhile are not replayed, so reload what matters once connected again. " +
	"When the server refuses the connection's access token (close code 4401 or 4403: it expired, or the password changed) the session is refreshed and the subscriptions resume once; if that fails they end with `KilnError.unauthenticated` (or `.forbidden`). " +
	"A failure that retrying cannot heal ends every stream with a `KilnError` instead of retrying forever: no WebSockets on this platform or for this URL (`.unsupported`), an upgrade refused with a 4xx (`.server(code: \"HTTP_404\")`, `.forbidden`), a protocol violation (`.decoding`), a fatal close code such as 4400 (`.server(code: \"WEBSOCKET_4400\")`). " +
	"An `error` message for one subscription ends only that stream.\n\n" +
	"Watch the connection to show \"offline\":\n\n" +
	"```swift\nlet watcher = Task {\n    for await state in kiln.subscriptions.stateUpdates() {\n        switch state {\n        case .connecting: print(\"connecting\")\n        case .connected: print(\"online\")\n        case .reconnecting(let attempt, let delay): print(\"offline: attempt \\(attempt) in \\(delay)s\")\n        case .closed(let error): print(\"closed\", error.map { \"\\($0)\" } ?? \"\")\n        }\n    }\n}\nlet now: KilnConnectionState = kiln.subscriptions.state\n```\n\n" +
	"The socket is pluggable: `KilnConfig.webSocket` takes a `KilnWebSocketFactory`, whose `open(_:)` returns a `KilnWebSocket` (send text, receive text, close with a code). " +
	"The default, `URLSessionWebSockets`, wraps `URLSessionWebSocketTask`; on Linux, where Foundation's libcurl may lack WebSockets (Debian 12's does: subscriptions then end with `.unsupported`), or behind a proxy, plug in another client. " +
	"`receive()` must throw `KilnWebSocketError.closed(code:reason:)` when the server closes the socket, `.rejected(status:message:)` when it refuses the upgrade and `.unsupported(message:)` when the socket can never work; any other error counts as a dropped connection. " +
	"(On Linux, `URLRequest` needs `import FoundationNetworking`.)\n\n" +
	"```swift\nstruct MySockets: KilnWebSocketFactory {\n    func open(_ request: URLRequest) async throws -> any KilnWebSocket {\n        // request: the ws(s):// URL, Sec-WebSocket-Protocol: graphql-transport-ws, KilnConfig.headers.\n        // Open it with your WebSocket library and adapt it to KilnWebSocket; here, URLSession's again:\n        URLSessionWebSocket(task: URLSession.shared.webSocketTask(with: request))\n    }\n}\nlet pluggedIn = KilnClient(config: KilnConfig(\n    url: URL(string: \"https://api.example.com/graphql\")!,\n    webSocket: MySockets(),\n    reconnect: KilnReconnectPolicy(initialDelay: 1, maxDelay: 60, maxAttempts: nil)\n))\n```\n\n"

// testsDoc says how to run the SDK's tests.
const testsDoc = "## Tests\n\n" +
	"In the Kiln repository this package has its tests in `Tests/KilnTests` (XCTest; a generated app's copy has none): unit tests (inputs, dates, errors, pagination, token refresh, the subscription state machine on scripted sockets) and live tests against a running server, which skip without `KILN_URL`.\n\n" +
	"- On a Mac: `swift test` (with `make run` going, `KILN_URL=http://localhost:8080/graphql swift test` runs the live tests too).\n" +
	"- On Linux, without the package manager: `./test.sh` compiles the package (Swift 6 language mode, and a Swift 5 mode type-check; any warning fails) and the tests with `swiftc` (`$SWIFTC`, else `swiftc` on PATH, else the project's `../shared/tools/swift/swiftc`), caches the builds in `~/.cache/kiln/swift-build`, and runs the tests; `KILN_URL=... ./test.sh` for the live ones, `./test.sh KilnTests.SubscriptionTests` for one class. " +
	"The live subscription tests plug a test-only WebSocket over plain sockets into `KilnConfig.webSocket` there, since `URLSessionWebSocketTask` cannot run on Debian 12's libcurl.\n" +
	"- `make test` runs all of it, with a live server, through `clients/swift_test.go`.\n"

// installDoc says how to add the package to an app, and to publish it.
const installDoc = "## Install and publish\n\n" +
	"In Xcode: File > Add Package Dependencies > Add Local… and pick this directory. In a `Package.swift`:\n\n" +
	"```swift\n.package(path: \"../clients/swift\"),\n// and in your target:\n.product(name: \"Kiln\", package: \"Kiln\"),\n```\n\n" +
	"To publish it with SwiftPM, give it a repository of its own: SwiftPM reads a package from the root of a Git repository and takes versions from its semantic-version tags. From the app's repository, split this directory's history out, push it and tag it:\n\n" +
	"```sh\n" +
	"git subtree split --prefix clients/swift -b swift-sdk        # this directory's history, as a branch\n" +
	"git push git@github.com:example/myapp-swift-sdk.git swift-sdk:main\n" +
	"git tag 1.0.0 swift-sdk && git push git@github.com:example/myapp-swift-sdk.git 1.0.0\n" +
	"```\n\n" +
	"then depend on it with `.package(url: \"https://github.com/example/myapp-swift-sdk.git\", from: \"1.0.0\")` (Xcode: Add Package Dependencies with that URL). After the next `make generate`, split, push and tag again with a higher version.\n\n"

// sessionsDoc explains session stores: in memory, Keychain, file.
const sessionsDoc = "## Keep the session\n\n" +
	"The client loads the session from `KilnConfig.sessionStore` once, when it is created, keeps it in memory, and saves it on every change: sign-up and sign-in, a refresh, `linkAccount` and `changePassword`; sign-out clears it. " +
	"`InMemorySessionStore` (the default) forgets it when the app quits. " +
	"`KeychainSessionStore` keeps it in the Keychain as a generic password (readable after the first unlock, never synced off the device, so background refreshes work; `accessGroup` shares it with app extensions); it exists on Apple platforms only (`#if canImport(Security)`), not on Linux. " +
	"`FileSessionStore(url:)` keeps it in a JSON file, for Linux, servers and command-line tools: every save writes a temporary file created owner-only (0600), flushes it and renames it over the file, so a crash never leaves half a session; a missing directory is created owner-only (0700).\n\n" +
	"```swift\n" +
	"#if canImport(Security)\n" +
	"let app = KilnClient(config: KilnConfig(url: URL(string: \"https://api.example.com/graphql\")!, sessionStore: KeychainSessionStore()))\n" +
	"#endif\n" +
	"let tool = KilnClient(config: KilnConfig(\n" +
	"    url: URL(string: \"https://api.example.com/graphql\")!,\n" +
	"    sessionStore: FileSessionStore(url: URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(\".myapp/session.json\"))\n" +
	"))\n" +
	"let signedIn = tool.auth.session != nil // loaded from the file\n" +
	"```\n\n" +
	"Any class conforming to `SessionStore` (`load`, `save`, `clear`, called from any thread; `Sendable`) works too. An error thrown by `save` or `clear` is thrown by the call that changed the session (the client keeps the new session in memory all the same); one thrown by `load` when the client is created counts as no session.\n\n"

// closeDoc explains KilnClient.close.
const closeDoc = "## Close\n\n" +
	"`kiln.close()` ends a client: every later call throws `KilnError.closed`; the subscription socket closes and every subscription stream ends without an error (a `for try await` loop simply exits), as do the `stateUpdates()` streams, after the state `.closed(error: nil)`; a subscription started after `close()` ends at once with `KilnError.closed`. " +
	"The URLSession the client created (`KilnConfig.urlSession` left nil) has its tasks cancelled (calls in flight throw `KilnError.closed`) and is invalidated; a URLSession you passed stays yours and valid. " +
	"The session stays in the store for the next client. Closing twice does nothing.\n\n" +
	"```swift\n" +
	"kiln.close()\n" +
	"let closed: Bool = kiln.isClosed\n" +
	"```\n\n"
