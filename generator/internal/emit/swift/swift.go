// Package swift emits Kiln's Swift client SDK (clients/swift) from the
// client API shape: a Swift package (Swift 5.9+, iOS 15+/macOS 12+,
// Foundation only) with Codable models, inputs, typed filters and
// orderings, a call struct per model (get, list, create, update, delete,
// subscriptions as AsyncThrowingStream), typed custom operations, and the
// static runtime (URLSession transport, sessions with refresh,
// graphql-transport-ws over URLSessionWebSocketTask, files, typed errors).
// It is pure: API in, files out.
package swift

import (
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

//go:embed runtime/*.swift
var runtime embed.FS

// Dir is where the SDK is written, relative to the project root.
const Dir = "clients/swift"

// SourceDir holds the package's sources.
const SourceDir = Dir + "/Sources/Kiln/"

// Files returns the SDK's files.
func Files(api *clientapi.API) []write.File {
	var files []write.File
	entries, _ := runtime.ReadDir("runtime")
	for _, e := range entries {
		b, _ := runtime.ReadFile("runtime/" + e.Name())
		files = append(files, write.File{Path: SourceDir + e.Name(), Content: []byte(fillDocs(string(b)))})
	}
	g := newGen(api)
	if len(api.Enums) > 0 {
		files = append(files, write.File{Path: SourceDir + "Enums.swift", Content: []byte(g.enums())})
	}
	for _, m := range api.Models {
		files = append(files, write.File{Path: SourceDir + modelFile(m, entries), Content: []byte(g.model(m))})
	}
	files = append(files,
		write.File{Path: SourceDir + "Operations.swift", Content: []byte(g.operations())},
		write.File{Path: SourceDir + "KilnClient.swift", Content: []byte(g.client())},
		write.File{Path: Dir + "/Package.swift", Content: []byte(packageSwift)},
		write.File{Path: Dir + "/README.md", Content: []byte(readme(g))},
	)
	return files
}

// modelFile is the source file of a model: <Name>.swift, or
// <Name>Record.swift when a runtime or generated file has that name
// (Page.swift).
func modelFile(m *clientapi.Model, runtime []fs.DirEntry) string {
	name := m.Name + ".swift"
	taken := map[string]bool{"Enums.swift": true, "Operations.swift": true, "KilnClient.swift": true}
	for _, e := range runtime {
		taken[e.Name()] = true
	}
	if taken[name] {
		return m.Name + "Record.swift"
	}
	return name
}

const packageSwift = `// swift-tools-version:5.9
// ` + write.Header + `
import PackageDescription
import Foundation

let package = Package(
    name: "Kiln",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Kiln", targets: ["Kiln"]),
    ],
    targets: [
        .target(name: "Kiln", path: "Sources/Kiln"),
    ]
)

// The SDK's own tests, where they exist (Tests/KilnTests in the Kiln
// repository): ` + "`swift test`" + `.
let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Tests/KilnTests")
if FileManager.default.fileExists(atPath: tests.path) {
    package.targets.append(.testTarget(name: "KilnTests", dependencies: ["Kiln"], path: "Tests/KilnTests"))
}
`

// fillDocs replaces {{doc name}} in runtime sources with the documents of
// clientapi, escaped for a Swift string literal.
func fillDocs(src string) string {
	for name, d := range clientapi.AuthDocs {
		src = strings.ReplaceAll(src, "{{doc "+name+"}}", Quote(d.Text))
	}
	for name, d := range clientapi.FileDocs {
		src = strings.ReplaceAll(src, "{{doc "+name+"}}", Quote(d.Text))
	}
	return src
}

// Quote escapes s for the inside of a Swift string literal.
func Quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

type gen struct {
	api        *clientapi.API
	known      map[string]bool // generated type names
	enumByName map[string]*ir.Enum
}

func newGen(api *clientapi.API) *gen {
	g := &gen{api: api, known: map[string]bool{"OrderDirection": true}, enumByName: map[string]*ir.Enum{}}
	for _, e := range api.Enums {
		g.known[e.Name] = true
		g.enumByName[e.Name] = e
	}
	for _, m := range api.Models {
		for _, n := range []string{"Create" + m.Name + "Input", "Update" + m.Name + "Input", m.Name + "WhereInput", m.Name + "Order", m.Name + "OrderField"} {
			g.known[n] = true
		}
	}
	return g
}

var keywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`associatedtype class deinit enum extension fileprivate func import init inout internal let open operator private precedencegroup protocol public rethrows static struct subscript typealias var break case catch continue default defer do else fallthrough for guard if in repeat return throw switch where while Any as await false is nil self Self super throws true try Type Protocol`) {
		keywords[k] = true
	}
}

// reserved are type names a model or enum cannot take in Swift: Swift's
// and Foundation's that the SDK or apps use unqualified, and every type the
// runtime declares (read from its sources).
var reserved = map[string]bool{}

var runtimeTypeRE = regexp.MustCompile(`(?m)^(?:public |final |private |fileprivate )*(?:struct|class|enum|protocol|actor|typealias)\s+([A-Za-z_][A-Za-z0-9_]*)`)

func init() {
	for _, k := range strings.Fields(`Any AnyObject Array AsyncStream CFDictionary CFString CFTypeRef OSStatus AsyncThrowingStream Bool Bundle Calendar CaseIterable Character CheckedContinuation Codable CodingKey Collection Comparable Data Date DateFormatter Decimal Decodable Decoder DecodingError Dictionary Double Encodable Encoder Equatable Error FileManager Float Hashable Hasher HTTPURLResponse Identifiable Int Int64 ISO8601DateFormatter JSONDecoder JSONEncoder Locale Never Notification NSLock NSObject Operation Optional Progress Protocol Range RawRepresentable Result Self Sendable Sequence Set String Substring Task Thread TimeInterval TimeZone Timer Type UInt64 URL URLComponents URLError URLRequest URLResponse URLSession URLSessionTask URLSessionTaskDelegate URLSessionWebSocketTask UUID Void`) {
		reserved[k] = true
	}
	entries, _ := runtime.ReadDir("runtime")
	for _, e := range entries {
		b, _ := runtime.ReadFile("runtime/" + e.Name())
		for _, m := range runtimeTypeRE.FindAllStringSubmatch(string(b), -1) {
			reserved[m[1]] = true
		}
	}
	// The generated types that are not per model.
	for _, k := range strings.Fields(`KilnClient Operations`) {
		reserved[k] = true
	}
}

// typeName is the Swift type of a model: its name, with Record appended
// when that name is reserved (Task -> TaskRecord).
func (g *gen) typeName(m *clientapi.Model) string {
	if reservedName(m.Name) {
		return m.Name + "Record"
	}
	return m.Name
}

// enumName is the Swift type of a GraphQL enum: its name, with Enum
// appended when that name is reserved (Type -> TypeEnum).
func enumName(name string) string {
	if reservedName(name) {
		return name + "Enum"
	}
	return name
}

func reservedName(name string) bool {
	return reserved[name] || strings.HasPrefix(name, "Kiln")
}

// clientMembers are the properties of KilnClient besides the models'.
var clientMembers = map[string]bool{"config": true, "transport": true, "auth": true, "subscriptions": true, "files": true, "operations": true}

// clientProp is the KilnClient property of a model's calls: its list
// field (posts), or <single>Records when that is taken (operationRecords).
func clientProp(m *clientapi.Model) string {
	if clientMembers[m.List] {
		return ident(m.Single + "Records")
	}
	return ident(m.List)
}

// prop is the Swift property of a field in an input type, whose method
// toJSON() a field cannot be named after (toJSON -> toJSON_).
func prop(name string) string {
	if name == "toJSON" {
		return name + "_"
	}
	return ident(name)
}

// param is a parameter declaration for a field or variable: its label
// is the name; its local name is the name too, unless it is a keyword or
// one of locals, then name_ (self -> `self` self_).
func param(name string, locals ...string) (decl, local string) {
	clash := keywords[name]
	for _, l := range locals {
		clash = clash || name == l
	}
	if clash {
		return ident(name) + " " + name + "_", name + "_"
	}
	return name, name
}

// ident escapes Swift keywords.
func ident(s string) string {
	if keywords[s] {
		return "`" + s + "`"
	}
	return s
}

// caseName is the Swift enum case for a GraphQL enum value: CREATED_AT ->
// createdAt.
func caseName(v string) string {
	parts := strings.Split(strings.ToLower(v), "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return ident(strings.Join(parts, ""))
}

type enumCase struct{ name, value string }

// cases are the Swift cases of enum values: caseName, with _ appended
// while one is taken (FOO_BAR and FOO__BAR).
func cases(values []string) []enumCase {
	seen := map[string]bool{}
	var out []enumCase
	for _, v := range values {
		n := caseName(v)
		for seen[n] {
			n = strings.Trim(n, "`") + "_"
		}
		seen[n] = true
		out = append(out, enumCase{n, v})
	}
	return out
}

func doc(b *strings.Builder, indent, text string) {
	if text == "" {
		return
	}
	for _, line := range strings.Split(text, "\n") {
		fmt.Fprintf(b, "%s/// %s\n", indent, line)
	}
}

// sw is the Swift type of a client type.
func sw(t clientapi.Type) string {
	var n string
	switch t.Kind {
	case ir.String, ir.ID:
		n = "String"
	case ir.Int:
		n = "Int"
	case ir.Float:
		n = "Double"
	case ir.Boolean:
		n = "Bool"
	case ir.Time:
		n = "Date"
	case ir.EnumK:
		n = enumName(t.Enum)
	case clientapi.FileKind:
		n = "KilnFile"
	default:
		n = "JSONValue"
	}
	if t.List {
		return "[" + n + "]"
	}
	return n
}

// enc is the Swift expression encoding v (of type t) as a JSONValue.
func enc(t clientapi.Type, v string) string {
	if t.List {
		e := t
		e.List = false
		return fmt.Sprintf(".array(%s.map { %s })", v, enc(e, "$0"))
	}
	switch t.Kind {
	case ir.String, ir.ID:
		return ".string(" + v + ")"
	case ir.Int:
		return ".int(" + v + ")"
	case ir.Float:
		return ".number(" + v + ")"
	case ir.Boolean:
		return ".bool(" + v + ")"
	case ir.Time:
		return ".string(KilnCoding.string(from: " + v + "))"
	case ir.EnumK:
		return ".string(" + v + ".rawValue)"
	}
	return v
}

func (g *gen) enums() string {
	var b strings.Builder
	b.WriteString("import Foundation\n")
	for _, e := range g.api.Enums {
		b.WriteString("\n")
		doc(&b, "", e.Description)
		fmt.Fprintf(&b, "public enum %s: String, Codable, CaseIterable, Hashable, Sendable {\n", enumName(e.Name))
		for _, c := range cases(e.Values) {
			fmt.Fprintf(&b, "    case %s = %q\n", c.name, c.value)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func (g *gen) model(m *clientapi.Model) string {
	var b strings.Builder
	b.WriteString("import Foundation\n\n")
	if m.IR.Description != "" {
		doc(&b, "", m.IR.Description)
	} else {
		doc(&b, "", "A "+m.Name+" record.")
	}
	fmt.Fprintf(&b, "public struct %s: Codable, Hashable, Sendable, Identifiable {\n", g.typeName(m))
	var keys []string
	for _, f := range m.Fields {
		doc(&b, "    ", f.Description)
		opt := ""
		if f.Nullable {
			opt = "?"
		}
		fmt.Fprintf(&b, "    public let %s: %s%s\n", decodedProp(f.Name), sw(f.Type), opt)
		keys = append(keys, f.Name)
	}
	codingKeys(&b, "", keys)
	b.WriteString("}\n")

	// Create input: required parameters first.
	fields := append([]clientapi.Field{}, m.Create...)
	sort.SliceStable(fields, func(i, j int) bool { return !fields[i].Nullable && fields[j].Nullable })
	fmt.Fprintf(&b, "\n/// Input of `%sAPI.create(_:)`. Optional fields left nil take the server's default.\npublic struct Create%sInput: Sendable {\n", m.Name, m.Name)
	var params, assigns []string
	for _, f := range fields {
		doc(&b, "    ", f.Description)
		decl, local := param(f.Name)
		if f.Nullable {
			fmt.Fprintf(&b, "    public var %s: %s?\n", prop(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s? = nil", decl, sw(f.Type)))
		} else {
			fmt.Fprintf(&b, "    public var %s: %s\n", prop(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s", decl, sw(f.Type)))
		}
		assigns = append(assigns, fmt.Sprintf("        self.%s = %s\n", prop(f.Name), local))
	}
	fmt.Fprintf(&b, "\n    public init(%s) {\n%s    }\n", strings.Join(params, ", "), strings.Join(assigns, ""))
	b.WriteString("\n    /// The JSON this input sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Create {
		if f.Nullable {
			fmt.Fprintf(&b, "        if let v = self.%s { o[%q] = %s }\n", prop(f.Name), f.Name, enc(f.Type, "v"))
		} else {
			fmt.Fprintf(&b, "        o[%q] = %s\n", f.Name, enc(f.Type, "self."+prop(f.Name)))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Update input.
	fmt.Fprintf(&b, "\n/// Input of `%sAPI.update(id:_:)`. Fields left nil (or `.absent`) are unchanged;\n/// `.null` clears a nullable field. Set `version` to fail with\n/// `KilnError.conflict` if the record changed since that version.\npublic struct Update%sInput: Sendable {\n", m.Name, m.Name)
	params, assigns = nil, nil
	for _, f := range m.Update {
		doc(&b, "    ", f.Description)
		decl, local := param(f.Name)
		if f.Patch {
			fmt.Fprintf(&b, "    public var %s: Patch<%s>\n", prop(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: Patch<%s> = .absent", decl, sw(f.Type)))
		} else {
			fmt.Fprintf(&b, "    public var %s: %s?\n", prop(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s? = nil", decl, sw(f.Type)))
		}
		assigns = append(assigns, fmt.Sprintf("        self.%s = %s\n", prop(f.Name), local))
	}
	fmt.Fprintf(&b, "\n    public init(%s) {\n%s    }\n", strings.Join(params, ", "), strings.Join(assigns, ""))
	b.WriteString("\n    /// The JSON this input sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Update {
		if f.Patch {
			fmt.Fprintf(&b, "        switch self.%s {\n        case .absent: break\n        case .null: o[%q] = .null\n        case .value(let v): o[%q] = %s\n        }\n", prop(f.Name), f.Name, f.Name, enc(f.Type, "v"))
		} else {
			fmt.Fprintf(&b, "        if let v = self.%s { o[%q] = %s }\n", prop(f.Name), f.Name, enc(f.Type, "v"))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Where input: a struct whose not is kept in an array, so that it can
	// contain itself.
	fmt.Fprintf(&b, "\n/// A filter on %[1]s records: every set predicate must hold (use `and`,\n/// `or`, `not` to combine). Build one with `%[1]sWhereInput { $0.id = \"...\" }`.\npublic struct %[1]sWhereInput: Sendable {\n", m.Name)
	for _, f := range m.Filters {
		switch {
		case f.Self == "not":
			fmt.Fprintf(&b, "    public var not: %[1]sWhereInput? {\n        get { notStorage.first }\n        set { notStorage = newValue.map { [$0] } ?? [] }\n    }\n    private var notStorage: [%[1]sWhereInput] = []\n", m.Name)
		case f.Self != "":
			fmt.Fprintf(&b, "    public var %s: [%sWhereInput]?\n", prop(f.Name), m.Name)
		case f.Target != "":
			fmt.Fprintf(&b, "    public var %s: [%sWhereInput]?\n", prop(f.Name), f.Target)
		default:
			fmt.Fprintf(&b, "    public var %s: %s?\n", prop(f.Name), sw(f.Type))
		}
	}
	fmt.Fprintf(&b, "\n    public init() {}\n\n    /// A filter set up by `configure`.\n    public init(_ configure: (inout %sWhereInput) -> Void) {\n        self.init()\n        configure(&self)\n    }\n", m.Name)
	b.WriteString("\n    /// The JSON this filter sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Filters {
		switch {
		case f.Self == "not":
			b.WriteString("        if let v = self.not { o[\"not\"] = v.toJSON() }\n")
		case f.Self != "" || f.Target != "":
			fmt.Fprintf(&b, "        if let v = self.%s { o[%q] = .array(v.map { $0.toJSON() }) }\n", prop(f.Name), f.Name)
		default:
			fmt.Fprintf(&b, "        if let v = self.%s { o[%q] = %s }\n", prop(f.Name), f.Name, enc(f.Type, "v"))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Ordering.
	fmt.Fprintf(&b, "\n/// Fields %[1]s lists can be ordered by.\npublic enum %[1]sOrderField: String, Codable, CaseIterable, Sendable {\n", m.Name)
	for _, c := range cases(m.OrderBy) {
		fmt.Fprintf(&b, "    case %s = %q\n", c.name, c.value)
	}
	b.WriteString("}\n")
	fmt.Fprintf(&b, `
/// One ordering of a %[1]s list.
public struct %[1]sOrder: Sendable {
    public var field: %[1]sOrderField
    public var direction: OrderDirection

    public init(_ field: %[1]sOrderField, _ direction: OrderDirection = .asc) {
        self.field = field
        self.direction = direction
    }

    /// The JSON this ordering sends.
    public func toJSON() -> JSONValue {
        .object(["field": .string(field.rawValue), "direction": .string(direction.rawValue)])
    }
}
`, m.Name)

	// Calls.
	get, list, create, update, del := m.Get(), m.ListDoc(), m.CreateDoc(), m.UpdateDoc(), m.DeleteDoc()
	fmt.Fprintf(&b, `
/// Calls on %[1]s records: `+"`kiln.%[8]s`"+`.
public struct %[1]sAPI: Sendable {
    let transport: KilnTransport
    let subscriptions: Subscriptions

    /// The record with the id, or nil when it does not exist or the viewer may not read it.
    public func get(id: String) async throws -> %[7]s? {
        let data = try await transport.execute(%[1]sAPI.getDocument, variables: %[1]sAPI.getVariables(id: id))
        return try KilnCoding.field(%[7]s?.self, %[3]q, in: data)
    }

    /// One page of records matching the filter, in orderBy order; pass Page.nextCursor as after for the next.
    public func list(where filter: %[1]sWhereInput? = nil, orderBy: [%[1]sOrder] = [], first: Int? = nil, after: String? = nil, last: Int? = nil, before: String? = nil) async throws -> Page<%[7]s> {
        let variables = %[1]sAPI.listVariables(where: filter, orderBy: orderBy, first: first, after: after, last: last, before: before)
        let data = try await transport.execute(%[1]sAPI.listDocument, variables: variables)
        return try Page<%[7]s>.decode(data[%[2]q])
    }

    /// Every record matching the filter, fetched pageSize at a time as the stream is consumed.
    public func listAll(where filter: %[1]sWhereInput? = nil, orderBy: [%[1]sOrder] = [], pageSize: Int = 50) -> AsyncThrowingStream<%[7]s, Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var after: String? = nil
                    repeat {
                        let page = try await self.list(where: filter, orderBy: orderBy, first: pageSize, after: after)
                        for item in page.items { continuation.yield(item) }
                        after = page.nextCursor
                    } while after != nil && !Task.isCancelled
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Creates a record.
    public func create(_ input: Create%[1]sInput) async throws -> %[7]s {
        let data = try await transport.execute(%[1]sAPI.createDocument, variables: ["input": input.toJSON()])
        return try KilnCoding.field(%[7]s.self, %[4]q, in: data)
    }

    /// Updates a record; with version set, a stale version throws KilnError.conflict.
    public func update(id: String, _ input: Update%[1]sInput) async throws -> %[7]s {
        let data = try await transport.execute(%[1]sAPI.updateDocument, variables: ["id": .string(id), "input": input.toJSON()])
        return try KilnCoding.field(%[7]s.self, %[5]q, in: data)
    }

    /// Deletes a record and returns its id.
    @discardableResult
    public func delete(id: String) async throws -> String {
        let data = try await transport.execute(%[1]sAPI.deleteDocument, variables: ["id": .string(id)])
        return try KilnCoding.field(String.self, %[6]q, in: data)
    }
`, m.Name, m.List, get.Field, create.Field, update.Field, del.Field, g.typeName(m), strings.Trim(clientProp(m), "`"))
	for _, ev := range m.Events {
		d := m.EventDoc(ev)
		typ := g.typeName(m)
		what := "records " + ev + " from now on that match the filter and that the viewer may read"
		if ev == "deleted" {
			typ = "String"
			what = "ids of records deleted from now on that matched the filter"
		}
		fmt.Fprintf(&b, `
    /// Live: %[4]s. Reconnects and resubscribes by itself.
    public func %[1]s(where filter: %[2]sWhereInput? = nil) -> AsyncThrowingStream<%[3]s, Error> {
        var variables: [String: JSONValue] = [:]
        if let filter = filter { variables["where"] = filter.toJSON() }
        return subscriptions.subscribe(%[2]sAPI.%[1]sDocument, variables: variables, field: %[5]q, as: %[3]s.self)
    }
`, ev, m.Name, typ, what, d.Field)
	}
	fmt.Fprintf(&b, `
    static func getVariables(id: String) -> [String: JSONValue] {
        ["id": .string(id)]
    }

    static func listVariables(where filter: %sWhereInput?, orderBy: [%sOrder], first: Int?, after: String?, last: Int?, before: String?) -> [String: JSONValue] {
        var v: [String: JSONValue] = [:]
        if let filter = filter { v["where"] = filter.toJSON() }
        if !orderBy.isEmpty { v["orderBy"] = .array(orderBy.map { $0.toJSON() }) }
        if let first = first { v["first"] = .int(first) }
        if let after = after { v["after"] = .string(after) }
        if let last = last { v["last"] = .int(last) }
        if let before = before { v["before"] = .string(before) }
        return v
    }
`, m.Name, m.Name)
	fmt.Fprintf(&b, "\n    static let getDocument = \"%s\"\n    static let listDocument = \"%s\"\n    static let createDocument = \"%s\"\n    static let updateDocument = \"%s\"\n    static let deleteDocument = \"%s\"\n",
		Quote(get.Text), Quote(list.Text), Quote(create.Text), Quote(update.Text), Quote(del.Text))
	for _, ev := range m.Events {
		fmt.Fprintf(&b, "    static let %sDocument = \"%s\"\n", ev, Quote(m.EventDoc(ev).Text))
	}
	b.WriteString("}\n")
	return b.String()
}

func (g *gen) client() string {
	var b strings.Builder
	b.WriteString(`import Foundation

/// The Kiln client: one per app. It loads the session from
/// ` + "`KilnConfig.sessionStore`" + ` when created.
///
///     let kiln = KilnClient(url: URL(string: "https://api.example.com/graphql")!)
///     try await kiln.auth.signIn(email: "ada@example.com", password: "correct horse battery")
///     kiln.close() // when done with it
public final class KilnClient: Sendable {
    public let config: KilnConfig
    public let transport: KilnTransport
    public let auth: Auth
    public let subscriptions: Subscriptions
    public let files: Files
    /// Typed functions for the operations in schema/operations.
    public let operations: Operations
`)
	for _, m := range g.api.Models {
		fmt.Fprintf(&b, "    public let %s: %sAPI\n", clientProp(m), m.Name)
	}
	b.WriteString(`
    public init(config: KilnConfig) {
        self.config = config
        let transport = KilnTransport(config: config)
        let subscriptions = Subscriptions(transport: transport)
        self.transport = transport
        self.subscriptions = subscriptions
        self.auth = Auth(transport: transport)
        self.files = Files(transport: transport)
        self.operations = Operations(transport: transport, subscriptions: subscriptions)
`)
	for _, m := range g.api.Models {
		fmt.Fprintf(&b, "        self.%s = %sAPI(transport: transport, subscriptions: subscriptions)\n", clientProp(m), m.Name)
	}
	b.WriteString(`    }

    public convenience init(url: URL) {
        self.init(config: KilnConfig(url: url))
    }

    /// True once ` + "`close()`" + ` ran.
    public var isClosed: Bool { transport.isClosed }

    /// Ends this client: every later call throws ` + "`KilnError.closed`" + `;
    /// the subscription socket closes and every subscription stream ends
    /// without an error (a ` + "`for try await`" + ` loop exits), as do the
    /// ` + "`subscriptions.stateUpdates()`" + ` streams, soon after this returns;
    /// the URLSession the client created (` + "`KilnConfig.urlSession`" + ` nil) has
    /// its tasks cancelled (calls in flight throw ` + "`KilnError.closed`" + `) and is
    /// invalidated. A URLSession you passed is left valid. The session stays
    /// in the store. Closing twice does nothing.
    public func close() {
        guard transport.close() else { return }
        let engine = subscriptions.engine
        Task { await engine.close() }
    }
}
`)
	return b.String()
}

// Custom operations.

func scalar(name string) string {
	switch name {
	case "Int":
		return "Int"
	case "Float":
		return "Double"
	case "Boolean":
		return "Bool"
	case "String", "ID", "Cursor":
		return "String"
	case "Time":
		return "Date"
	}
	return "JSONValue"
}

// refType is the Swift type of a variable or result type; object types are
// named by nested.
func (g *gen) refType(r *clientapi.TypeRef, nested string) string {
	var n string
	switch {
	case r.Elem != nil:
		n = "[" + g.refType(r.Elem, nested) + "]"
	case r.Class == "object":
		n = nested
	case r.Class == "enum" && g.enumByName[r.Named] != nil:
		n = enumName(r.Named)
	case r.Class == "enum" && g.known[r.Named]:
		n = r.Named
	case r.Class == "input" && g.known[r.Named]:
		n = r.Named
	case r.Class == "enum":
		n = "String"
	case r.Class == "input":
		n = "JSONValue"
	default:
		n = scalar(r.Named)
	}
	if !r.NonNull {
		n += "?"
	}
	return n
}

// refEnc encodes a non-optional variable value v of type r.
func (g *gen) refEnc(r *clientapi.TypeRef, v string) string {
	switch {
	case r.Elem != nil:
		inner := g.refEnc(r.Elem, "$0")
		if !r.Elem.NonNull {
			inner = "$0.map { " + g.refEnc(r.Elem, "$0") + " } ?? .null"
		}
		return fmt.Sprintf(".array(%s.map { %s })", v, inner)
	case r.Class == "input" && g.known[r.Named]:
		return v + ".toJSON()"
	case r.Class == "enum" && g.known[r.Named]:
		return ".string(" + v + ".rawValue)"
	case r.Class == "enum":
		return ".string(" + v + ")"
	}
	switch scalar(r.Named) {
	case "Int":
		return ".int(" + v + ")"
	case "Double":
		return ".number(" + v + ")"
	case "Bool":
		return ".bool(" + v + ")"
	case "String":
		return ".string(" + v + ")"
	case "Date":
		return ".string(KilnCoding.string(from: " + v + "))"
	}
	return v
}

// opLocals are the local names of a custom operation's function, which a
// variable's local name must not take.
var opLocals = []string{"variables", "v", "data"}

// opParams are the Swift parameters of a custom operation function.
func (g *gen) opParams(op *clientapi.Operation) []string {
	var params []string
	for _, v := range op.Variables {
		t := g.refType(v.Type, "")
		decl, _ := param(v.Name, opLocals...)
		if v.Optional() {
			params = append(params, fmt.Sprintf("%s: %s = nil", decl, strings.TrimSuffix(t, "?")+"?"))
		} else {
			params = append(params, fmt.Sprintf("%s: %s", decl, t))
		}
	}
	return params
}

// opFunc is the Swift function of a custom operation: its name in lower
// camel case, with Operation appended when the struct's own members have it.
func opFunc(op *clientapi.Operation) string {
	fn := clientapi.LowerFirst(op.Name)
	if fn == "kilnTransport" || fn == "kilnSubscriptions" {
		fn += "Operation"
	}
	return ident(fn)
}

func (g *gen) operations() string {
	var b strings.Builder
	b.WriteString(`import Foundation

/// Typed functions for the operation documents in schema/operations.
public struct Operations: Sendable {
    let kilnTransport: KilnTransport
    let kilnSubscriptions: Subscriptions

    init(transport: KilnTransport, subscriptions: Subscriptions) {
        self.kilnTransport = transport
        self.kilnSubscriptions = subscriptions
    }
`)
	for _, op := range g.api.Operations {
		res := g.resultName(op)
		lower := clientapi.LowerFirst(op.Name)
		vars := "        var variables: [String: JSONValue] = [:]\n"
		for _, v := range op.Variables {
			_, local := param(v.Name, opLocals...)
			nn := &clientapi.TypeRef{Named: v.Type.Named, Elem: v.Type.Elem, Class: v.Type.Class, NonNull: true}
			if v.Optional() {
				vars += fmt.Sprintf("        if let v = %s { variables[%q] = %s }\n", local, v.Name, g.refEnc(nn, "v"))
			} else {
				vars += fmt.Sprintf("        variables[%q] = %s\n", v.Name, g.refEnc(nn, local))
			}
		}
		fmt.Fprintf(&b, "\n    /// Runs the %s %s (persisted-query hash `Operations.%sHash`).\n", op.Kind, op.Name, lower)
		if op.Kind == "subscription" {
			fmt.Fprintf(&b, "    public func %s(%s) -> AsyncThrowingStream<%s, Error> {\n%s        return kilnSubscriptions.subscribeData(Operations.%sDocument, variables: variables, as: %s.self)\n    }\n",
				opFunc(op), strings.Join(g.opParams(op), ", "), res, vars, lower, res)
			continue
		}
		fmt.Fprintf(&b, "    public func %s(%s) async throws -> %s {\n%s        let data = try await kilnTransport.execute(Operations.%sDocument, variables: variables, hash: Operations.%sHash)\n        return try KilnCoding.decode(%s.self, from: .object(data))\n    }\n",
			opFunc(op), strings.Join(g.opParams(op), ", "), res, vars, lower, lower, res)
	}
	for _, op := range g.api.Operations {
		fmt.Fprintf(&b, "\n    /// The text of %[1]s, exactly as the server's allow-list has it.\n    public static let %[2]sDocument = \"%[3]s\"\n    /// The sha256 of the text: its persisted-query id.\n    public static let %[2]sHash = %[4]q\n", op.Name, clientapi.LowerFirst(op.Name), Quote(op.Text), op.Hash)
	}
	b.WriteString("}\n")
	for _, op := range g.api.Operations {
		fmt.Fprintf(&b, "\n/// The data of `Operations.%s`.\n", strings.Trim(opFunc(op), "`"))
		g.resultStruct(&b, "", g.resultName(op), op.Result)
	}
	return b.String()
}

// resultName is the Swift type of a custom operation's data: <Name>Result.
func (g *gen) resultName(op *clientapi.Operation) string {
	n := op.Name + "Result"
	if reservedName(n) || g.known[n] {
		n = op.Name + "OperationResult"
	}
	return n
}

// nestedName is the Swift type of an object selection inside a result:
// the key in upper camel case, with Object appended when that would hide a
// type the result uses or is the key itself (data -> Data would hide
// Foundation's Data: DataObject).
func (g *gen) nestedName(key string) string {
	n := clientapi.UpperFirst(key)
	if n == key || reservedName(n) || g.known[n] || g.enumByName[n] != nil {
		n += "Object"
	}
	return n
}

func (g *gen) resultStruct(b *strings.Builder, indent, name string, sels []*clientapi.Selection) {
	fmt.Fprintf(b, "%spublic struct %s: Decodable, Hashable, Sendable {\n", indent, name)
	var nested []*clientapi.Selection
	var keys []string
	names := map[*clientapi.Selection]string{}
	used := map[string]bool{name: true}
	for _, s := range sels {
		if len(s.Children) > 0 {
			n := g.nestedName(s.Key)
			for used[n] {
				n += "_"
			}
			used[n] = true
			names[s] = n
			nested = append(nested, s)
		}
	}
	for _, s := range sels {
		fmt.Fprintf(b, "%s    public let %s: %s\n", indent, decodedProp(s.Key), g.refType(s.Type, names[s]))
		keys = append(keys, s.Key)
	}
	codingKeys(b, indent, keys)
	for _, s := range nested {
		b.WriteString("\n")
		g.resultStruct(b, indent+"    ", names[s], s.Children)
	}
	fmt.Fprintf(b, "%s}\n", indent)
}

// decodedProp is the Swift property of a decoded field: its name, but
// hashValue_ for hashValue (a Hashable type's own; CodingKeys map it).
func decodedProp(key string) string {
	if key == "hashValue" {
		return key + "_"
	}
	return ident(key)
}

// codingKeys writes the CodingKeys of a decoded type when one of its
// properties is not named as its key.
func codingKeys(b *strings.Builder, indent string, keys []string) {
	renamed := false
	for _, k := range keys {
		renamed = renamed || strings.Trim(decodedProp(k), "`") != k
	}
	if !renamed {
		return
	}
	fmt.Fprintf(b, "\n%s    enum CodingKeys: String, CodingKey {\n", indent)
	for _, k := range keys {
		if p := decodedProp(k); strings.Trim(p, "`") != k {
			fmt.Fprintf(b, "%s        case %s = %q\n", indent, p, k)
		} else {
			fmt.Fprintf(b, "%s        case %s\n", indent, p)
		}
	}
	fmt.Fprintf(b, "%s    }\n", indent)
}
