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
		files = append(files, write.File{Path: SourceDir + m.Name + ".swift", Content: []byte(g.model(m))})
	}
	files = append(files,
		write.File{Path: SourceDir + "Operations.swift", Content: []byte(g.operations())},
		write.File{Path: SourceDir + "KilnClient.swift", Content: []byte(g.client())},
		write.File{Path: Dir + "/Package.swift", Content: []byte(packageSwift)},
		write.File{Path: Dir + "/README.md", Content: []byte(readme(g))},
	)
	return files
}

const packageSwift = `// swift-tools-version:5.9
// ` + write.Header + `
import PackageDescription

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

// reserved are type names a model cannot take in Swift: the runtime's,
// and Swift's and Foundation's that apps use unqualified.
var reserved = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`Task Data Date URL Error Result Set Array Dictionary String Int Double Bool Character Optional Never Any Type Protocol Self Decimal UUID Locale Calendar TimeZone Notification Operation Thread Timer Bundle Progress Page PageInfo Session User Auth Files Operations Subscriptions KilnClient KilnConfig KilnTransport KilnError KilnFile JSONValue Patch OrderDirection KilnCoding UploadHeader UploadTicket UploadProgress UploadPart`) {
		reserved[k] = true
	}
}

// typeName is the Swift type of a model: its name, with Record appended
// when that name is reserved (Task -> TaskRecord).
func (g *gen) typeName(m *clientapi.Model) string {
	if reserved[m.Name] {
		return m.Name + "Record"
	}
	return m.Name
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
		n = t.Enum
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
		fmt.Fprintf(&b, "public enum %s: String, Codable, CaseIterable, Hashable, Sendable {\n", e.Name)
		for _, v := range e.Values {
			fmt.Fprintf(&b, "    case %s = %q\n", caseName(v), v)
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
	for _, f := range m.Fields {
		doc(&b, "    ", f.Description)
		opt := ""
		if f.Nullable {
			opt = "?"
		}
		fmt.Fprintf(&b, "    public let %s: %s%s\n", ident(f.Name), sw(f.Type), opt)
	}
	b.WriteString("}\n")

	// Create input: required parameters first.
	fields := append([]clientapi.Field{}, m.Create...)
	sort.SliceStable(fields, func(i, j int) bool { return !fields[i].Nullable && fields[j].Nullable })
	fmt.Fprintf(&b, "\n/// Input of `%sAPI.create(_:)`. Optional fields left nil take the server's default.\npublic struct Create%sInput: Sendable {\n", m.Name, m.Name)
	var params, assigns []string
	for _, f := range fields {
		doc(&b, "    ", f.Description)
		if f.Nullable {
			fmt.Fprintf(&b, "    public var %s: %s?\n", ident(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s? = nil", ident(f.Name), sw(f.Type)))
		} else {
			fmt.Fprintf(&b, "    public var %s: %s\n", ident(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s", ident(f.Name), sw(f.Type)))
		}
		assigns = append(assigns, fmt.Sprintf("        self.%s = %s\n", ident(f.Name), ident(f.Name)))
	}
	fmt.Fprintf(&b, "\n    public init(%s) {\n%s    }\n", strings.Join(params, ", "), strings.Join(assigns, ""))
	b.WriteString("\n    /// The JSON this input sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Create {
		if f.Nullable {
			fmt.Fprintf(&b, "        if let v = %s { o[%q] = %s }\n", ident(f.Name), f.Name, enc(f.Type, "v"))
		} else {
			fmt.Fprintf(&b, "        o[%q] = %s\n", f.Name, enc(f.Type, ident(f.Name)))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Update input.
	fmt.Fprintf(&b, "\n/// Input of `%sAPI.update(id:_:)`. Fields left nil (or `.absent`) are unchanged;\n/// `.null` clears a nullable field. Set `version` to fail with\n/// `KilnError.conflict` if the record changed since that version.\npublic struct Update%sInput: Sendable {\n", m.Name, m.Name)
	params, assigns = nil, nil
	for _, f := range m.Update {
		doc(&b, "    ", f.Description)
		if f.Patch {
			fmt.Fprintf(&b, "    public var %s: Patch<%s>\n", ident(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: Patch<%s> = .absent", ident(f.Name), sw(f.Type)))
		} else {
			fmt.Fprintf(&b, "    public var %s: %s?\n", ident(f.Name), sw(f.Type))
			params = append(params, fmt.Sprintf("%s: %s? = nil", ident(f.Name), sw(f.Type)))
		}
		assigns = append(assigns, fmt.Sprintf("        self.%s = %s\n", ident(f.Name), ident(f.Name)))
	}
	fmt.Fprintf(&b, "\n    public init(%s) {\n%s    }\n", strings.Join(params, ", "), strings.Join(assigns, ""))
	b.WriteString("\n    /// The JSON this input sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Update {
		if f.Patch {
			fmt.Fprintf(&b, "        switch %s {\n        case .absent: break\n        case .null: o[%q] = .null\n        case .value(let v): o[%q] = %s\n        }\n", ident(f.Name), f.Name, f.Name, enc(f.Type, "v"))
		} else {
			fmt.Fprintf(&b, "        if let v = %s { o[%q] = %s }\n", ident(f.Name), f.Name, enc(f.Type, "v"))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Where input: a class, so it can contain itself (not).
	fmt.Fprintf(&b, "\n/// A filter on %[1]s records: every set predicate must hold (use `and`,\n/// `or`, `not` to combine). Build one with `%[1]sWhereInput { $0.id = \"...\" }`.\npublic final class %[1]sWhereInput: @unchecked Sendable {\n", m.Name)
	for _, f := range m.Filters {
		switch {
		case f.Self == "not":
			fmt.Fprintf(&b, "    public var not: %sWhereInput?\n", m.Name)
		case f.Self != "":
			fmt.Fprintf(&b, "    public var %s: [%sWhereInput]?\n", f.Name, m.Name)
		case f.Target != "":
			fmt.Fprintf(&b, "    public var %s: [%sWhereInput]?\n", ident(f.Name), f.Target)
		default:
			fmt.Fprintf(&b, "    public var %s: %s?\n", ident(f.Name), sw(f.Type))
		}
	}
	fmt.Fprintf(&b, "\n    public init() {}\n\n    /// A filter set up by `configure`.\n    public convenience init(_ configure: (%sWhereInput) -> Void) {\n        self.init()\n        configure(self)\n    }\n", m.Name)
	b.WriteString("\n    /// The JSON this filter sends.\n    public func toJSON() -> JSONValue {\n        var o: [String: JSONValue] = [:]\n")
	for _, f := range m.Filters {
		switch {
		case f.Self == "not":
			b.WriteString("        if let v = not { o[\"not\"] = v.toJSON() }\n")
		case f.Self != "" || f.Target != "":
			fmt.Fprintf(&b, "        if let v = %s { o[%q] = .array(v.map { $0.toJSON() }) }\n", ident(f.Name), f.Name)
		default:
			fmt.Fprintf(&b, "        if let v = %s { o[%q] = %s }\n", ident(f.Name), f.Name, enc(f.Type, "v"))
		}
	}
	b.WriteString("        return .object(o)\n    }\n}\n")

	// Ordering.
	fmt.Fprintf(&b, "\n/// Fields %[1]s lists can be ordered by.\npublic enum %[1]sOrderField: String, Codable, CaseIterable, Sendable {\n", m.Name)
	for _, v := range m.OrderBy {
		fmt.Fprintf(&b, "    case %s = %q\n", caseName(v), v)
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
/// Calls on %[1]s records: `+"`kiln.%[2]s`"+`.
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
`, m.Name, m.List, get.Field, create.Field, update.Field, del.Field, g.typeName(m))
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

/// The Kiln client: one per app.
///
///     let kiln = KilnClient(url: URL(string: "https://api.example.com/graphql")!)
///     try await kiln.auth.signIn(email: "ada@example.com", password: "correct horse battery")
public final class KilnClient: @unchecked Sendable {
    public let config: KilnConfig
    public let transport: KilnTransport
    public let auth: Auth
    public let subscriptions: Subscriptions
    public let files: Files
    /// Typed functions for the operations in schema/operations.
    public let operations: Operations
`)
	for _, m := range g.api.Models {
		fmt.Fprintf(&b, "    public let %s: %sAPI\n", ident(m.List), m.Name)
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
		fmt.Fprintf(&b, "        self.%s = %sAPI(transport: transport, subscriptions: subscriptions)\n", ident(m.List), m.Name)
	}
	b.WriteString(`    }

    public convenience init(url: URL) {
        self.init(config: KilnConfig(url: url))
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
	case (r.Class == "enum" || r.Class == "input") && g.known[r.Named]:
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

// opParams are the Swift parameters of a custom operation function.
func (g *gen) opParams(op *clientapi.Operation) []string {
	var params []string
	for _, v := range op.Variables {
		t := g.refType(v.Type, "")
		if v.Optional() {
			params = append(params, fmt.Sprintf("%s: %s = nil", ident(v.Name), strings.TrimSuffix(t, "?")+"?"))
		} else {
			params = append(params, fmt.Sprintf("%s: %s", ident(v.Name), t))
		}
	}
	return params
}

func (g *gen) operations() string {
	var b strings.Builder
	b.WriteString(`import Foundation

/// Typed functions for the operation documents in schema/operations.
public struct Operations: Sendable {
    let transport: KilnTransport
    let subscriptions: Subscriptions
`)
	for _, op := range g.api.Operations {
		res := op.Name + "Result"
		fn := ident(clientapi.LowerFirst(op.Name))
		vars := "        var variables: [String: JSONValue] = [:]\n"
		for _, v := range op.Variables {
			nn := &clientapi.TypeRef{Named: v.Type.Named, Elem: v.Type.Elem, Class: v.Type.Class, NonNull: true}
			if v.Optional() {
				vars += fmt.Sprintf("        if let v = %s { variables[%q] = %s }\n", ident(v.Name), v.Name, g.refEnc(nn, "v"))
			} else {
				vars += fmt.Sprintf("        variables[%q] = %s\n", v.Name, g.refEnc(nn, ident(v.Name)))
			}
		}
		fmt.Fprintf(&b, "\n    /// Runs the %s %s (persisted-query hash `Operations.%sHash`).\n", op.Kind, op.Name, clientapi.LowerFirst(op.Name))
		if op.Kind == "subscription" {
			fmt.Fprintf(&b, "    public func %s(%s) -> AsyncThrowingStream<%s, Error> {\n%s        return subscriptions.subscribeData(Operations.%sDocument, variables: variables, as: %s.self)\n    }\n",
				fn, strings.Join(g.opParams(op), ", "), res, vars, clientapi.LowerFirst(op.Name), res)
			continue
		}
		fmt.Fprintf(&b, "    public func %s(%s) async throws -> %s {\n%s        let data = try await transport.execute(Operations.%sDocument, variables: variables, hash: Operations.%sHash)\n        return try KilnCoding.decode(%s.self, from: .object(data))\n    }\n",
			fn, strings.Join(g.opParams(op), ", "), res, vars, clientapi.LowerFirst(op.Name), clientapi.LowerFirst(op.Name), res)
	}
	for _, op := range g.api.Operations {
		fmt.Fprintf(&b, "\n    /// The text of %[1]s, exactly as the server's allow-list has it.\n    public static let %[2]sDocument = \"%[3]s\"\n    /// The sha256 of the text: its persisted-query id.\n    public static let %[2]sHash = %[4]q\n", op.Name, clientapi.LowerFirst(op.Name), Quote(op.Text), op.Hash)
	}
	b.WriteString("}\n")
	for _, op := range g.api.Operations {
		fmt.Fprintf(&b, "\n/// The data of `Operations.%s`.\n", clientapi.LowerFirst(op.Name))
		g.resultStruct(&b, "", op.Name+"Result", op.Result)
	}
	return b.String()
}

func (g *gen) resultStruct(b *strings.Builder, indent, name string, sels []*clientapi.Selection) {
	fmt.Fprintf(b, "%spublic struct %s: Decodable, Hashable, Sendable {\n", indent, name)
	var nested []*clientapi.Selection
	for _, s := range sels {
		fmt.Fprintf(b, "%s    public let %s: %s\n", indent, ident(s.Key), g.refType(s.Type, clientapi.UpperFirst(s.Key)))
		if len(s.Children) > 0 {
			nested = append(nested, s)
		}
	}
	for _, s := range nested {
		b.WriteString("\n")
		g.resultStruct(b, indent+"    ", clientapi.UpperFirst(s.Key), s.Children)
	}
	fmt.Fprintf(b, "%s}\n", indent)
}
