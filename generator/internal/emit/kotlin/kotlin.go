// Package kotlin emits Kiln's Kotlin/JVM client SDK (clients/kotlin) from
// the client API shape: kotlinx.serialization models, inputs, typed
// filters and orderings, a call class per model (get, list, create, update,
// delete, subscriptions as Flow), typed custom operations, and the static
// runtime (OkHttp transport, sessions with refresh, graphql-transport-ws,
// files, typed errors). It is pure: API in, files out.
package kotlin

import (
	"embed"
	"fmt"
	"sort"
	"strings"

	"kiln/generator/internal/emit/clientapi"
	"kiln/generator/internal/ir"
	"kiln/generator/internal/write"
)

//go:embed runtime/*.kt
var runtime embed.FS

// tests are the SDK's own tests (src/test), generated with it: they test
// the runtime with types of their own, so they pass whatever the schema.
//
//go:embed testsrc/*.kt
var tests embed.FS

// Dir is where the SDK is written, relative to the project root.
const Dir = "clients/kotlin"

const pkgDir = Dir + "/src/main/kotlin/io/kiln/sdk/"

// TestDir holds the SDK's own tests.
const TestDir = Dir + "/src/test/kotlin/io/kiln/sdk/"

// Files returns the SDK's files.
func Files(api *clientapi.API) []write.File {
	var files []write.File
	entries, _ := runtime.ReadDir("runtime")
	for _, e := range entries {
		b, _ := runtime.ReadFile("runtime/" + e.Name())
		files = append(files, write.File{Path: pkgDir + e.Name(), Content: []byte(fillDocs(string(b)))})
	}
	testEntries, _ := tests.ReadDir("testsrc")
	for _, e := range testEntries {
		b, _ := tests.ReadFile("testsrc/" + e.Name())
		files = append(files, write.File{Path: TestDir + e.Name(), Content: b})
	}
	g := &gen{api: api, known: map[string]bool{}}
	for _, e := range api.Enums {
		g.known[e.Name] = true
	}
	for _, m := range api.Models {
		for _, n := range []string{"Create" + m.Name + "Input", "Update" + m.Name + "Input", m.Name + "WhereInput", m.Name + "Order", m.Name + "OrderField"} {
			g.known[n] = true
		}
	}
	g.known["OrderDirection"] = true
	if len(api.Enums) > 0 {
		files = append(files, write.File{Path: pkgDir + "Enums.kt", Content: []byte(g.enums())})
	}
	for _, m := range api.Models {
		files = append(files, write.File{Path: pkgDir + m.Name + ".kt", Content: []byte(g.model(m))})
	}
	files = append(files,
		write.File{Path: pkgDir + "Operations.kt", Content: []byte(g.operations())},
		write.File{Path: pkgDir + "KilnClient.kt", Content: []byte(g.client())},
		write.File{Path: Dir + "/pom.xml", Content: []byte(pom)},
		write.File{Path: Dir + "/README.md", Content: []byte(readme(api))},
	)
	return files
}

// fillDocs replaces {{doc name}} in runtime sources with the documents of
// clientapi, escaped for a Kotlin string literal.
func fillDocs(src string) string {
	for name, d := range clientapi.AuthDocs {
		src = strings.ReplaceAll(src, "{{doc "+name+"}}", Quote(d.Text))
	}
	for name, d := range clientapi.FileDocs {
		src = strings.ReplaceAll(src, "{{doc "+name+"}}", Quote(d.Text))
	}
	return src
}

// Quote escapes s for the inside of a Kotlin string literal.
func Quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

type gen struct {
	api   *clientapi.API
	known map[string]bool // generated type names
}

const header = "package io.kiln.sdk\n\n"

var keywords = map[string]bool{"as": true, "break": true, "class": true, "continue": true, "do": true, "else": true, "false": true, "for": true, "fun": true, "if": true, "in": true, "interface": true, "is": true, "null": true, "object": true, "package": true, "return": true, "super": true, "this": true, "throw": true, "true": true, "try": true, "typealias": true, "typeof": true, "val": true, "var": true, "when": true, "while": true}

// reserved are type names a model cannot take in Kotlin: the runtime's
// and the standard library's that apps use unqualified.
var reserved = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`Page PageInfo Session User Auth Files Operations Subscriptions KilnClient KilnConfig KilnTransport KilnException KilnFile KilnTime KilnJson Patch OrderDirection UploadHeader UploadTicket InstantSerializer SessionStore InMemorySessionStore FileSessionStore SubscriptionSocket WsEvent KilnRuntimeTest KilnTestServer KilnCloseProbe String Int Long Double Float Boolean Char Byte Short List Map Set Any Unit Nothing Result Pair Triple Array Sequence Number Enum Comparable Throwable Exception Error`) {
		reserved[k] = true
	}
}

// typeName is the Kotlin type of a model: its name, with Record appended
// when that name is reserved (Page -> PageRecord).
func (g *gen) typeName(m *clientapi.Model) string {
	if reserved[m.Name] {
		return m.Name + "Record"
	}
	return m.Name
}

// ident escapes Kotlin keywords.
func ident(s string) string {
	if keywords[s] {
		return "`" + s + "`"
	}
	return s
}

func doc(b *strings.Builder, indent, text string) {
	if text == "" {
		return
	}
	fmt.Fprintf(b, "%s/** %s */\n", indent, strings.ReplaceAll(strings.ReplaceAll(text, "*/", "* /"), "\n", " "))
}

// kt is the Kotlin type of a client type.
func kt(t clientapi.Type) string {
	var n string
	switch t.Kind {
	case ir.String, ir.ID:
		n = "String"
	case ir.Int:
		n = "Int"
	case ir.Float:
		n = "Double"
	case ir.Boolean:
		n = "Boolean"
	case ir.Time:
		n = "KilnTime"
	case ir.JSON:
		n = "JsonElement"
	case ir.EnumK:
		n = t.Enum
	case clientapi.FileKind:
		n = "KilnFile"
	default:
		n = "JsonElement"
	}
	if t.List {
		return "List<" + n + ">"
	}
	return n
}

// enc is the Kotlin expression encoding v (of type t) as a JsonElement.
func enc(t clientapi.Type, v string) string {
	if t.List {
		e := t
		e.List = false
		return fmt.Sprintf("JsonArray(%s.map { %s })", v, enc(e, "it"))
	}
	switch t.Kind {
	case ir.Time:
		return "JsonPrimitive(" + v + ".toString())"
	case ir.JSON:
		return v
	case ir.EnumK:
		return "JsonPrimitive(" + v + ".name)"
	}
	return "JsonPrimitive(" + v + ")"
}

func (g *gen) enums() string {
	var b strings.Builder
	b.WriteString(header + "import kotlinx.serialization.Serializable\n")
	for _, e := range g.api.Enums {
		b.WriteString("\n")
		doc(&b, "", e.Description)
		fmt.Fprintf(&b, "@Serializable\nenum class %s { %s }\n", e.Name, strings.Join(e.Values, ", "))
	}
	return b.String()
}

func (g *gen) model(m *clientapi.Model) string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(`import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.serialization.Serializable
import kotlinx.serialization.builtins.nullable
import kotlinx.serialization.builtins.serializer
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject

`)
	// The model.
	if m.IR.Description != "" {
		doc(&b, "", m.IR.Description)
	} else {
		doc(&b, "", "A "+m.Name+" record.")
	}
	fmt.Fprintf(&b, "@Serializable\ndata class %s(\n", g.typeName(m))
	for _, f := range m.Fields {
		doc(&b, "    ", f.Description)
		if f.Nullable {
			fmt.Fprintf(&b, "    val %s: %s? = null,\n", ident(f.Name), kt(f.Type))
		} else {
			fmt.Fprintf(&b, "    val %s: %s,\n", ident(f.Name), kt(f.Type))
		}
	}
	b.WriteString(")\n")

	// Create input: required parameters first.
	fmt.Fprintf(&b, "\n/** Input of [%sApi.create]. Optional fields left null take the server's default. */\ndata class Create%sInput(\n", m.Name, m.Name)
	fields := append([]clientapi.Field{}, m.Create...)
	sort.SliceStable(fields, func(i, j int) bool { return !fields[i].Nullable && fields[j].Nullable })
	for _, f := range fields {
		doc(&b, "    ", f.Description)
		if f.Nullable {
			fmt.Fprintf(&b, "    val %s: %s? = null,\n", ident(f.Name), kt(f.Type))
		} else {
			fmt.Fprintf(&b, "    val %s: %s,\n", ident(f.Name), kt(f.Type))
		}
	}
	b.WriteString(") {\n    fun toJson(): JsonObject = buildJsonObject {\n")
	for _, f := range m.Create {
		if f.Nullable {
			fmt.Fprintf(&b, "        if (%s != null) put(%q, %s)\n", ident(f.Name), f.Name, enc(f.Type, ident(f.Name)))
		} else {
			fmt.Fprintf(&b, "        put(%q, %s)\n", f.Name, enc(f.Type, ident(f.Name)))
		}
	}
	b.WriteString("    }\n}\n")

	// Update input.
	fmt.Fprintf(&b, "\n/**\n * Input of [%sApi.update]. Fields left null (or [Patch.Absent]) are unchanged;\n * [Patch.Null] clears a nullable field. Set [version] to fail with\n * [KilnException.Conflict] if the record changed since that version.\n */\ndata class Update%sInput(\n", m.Name, m.Name)
	for _, f := range m.Update {
		doc(&b, "    ", f.Description)
		if f.Patch {
			fmt.Fprintf(&b, "    val %s: Patch<%s> = Patch.Absent,\n", ident(f.Name), kt(f.Type))
		} else {
			fmt.Fprintf(&b, "    val %s: %s? = null,\n", ident(f.Name), kt(f.Type))
		}
	}
	b.WriteString(") {\n    fun toJson(): JsonObject = buildJsonObject {\n")
	for _, f := range m.Update {
		if f.Patch {
			fmt.Fprintf(&b, "        when (val p = %s) {\n            is Patch.Absent -> {}\n            is Patch.Null -> put(%q, JsonNull)\n            is Patch.Value -> put(%q, %s)\n        }\n", ident(f.Name), f.Name, f.Name, enc(f.Type, "p.value"))
		} else {
			fmt.Fprintf(&b, "        if (%s != null) put(%q, %s)\n", ident(f.Name), f.Name, enc(f.Type, ident(f.Name)))
		}
	}
	b.WriteString("    }\n}\n")

	// Where input.
	fmt.Fprintf(&b, "\n/**\n * A filter on %[1]s records: every set predicate must hold (use [and], [or],\n * [not] to combine). Build one with [%[2]sWhere].\n */\nclass %[1]sWhereInput {\n", m.Name, clientapi.LowerFirst(m.Name))
	for _, f := range m.Filters {
		switch {
		case f.Self == "not":
			fmt.Fprintf(&b, "    var not: %sWhereInput? = null\n", m.Name)
		case f.Self != "":
			fmt.Fprintf(&b, "    var %s: List<%sWhereInput>? = null\n", f.Name, m.Name)
		case f.Target != "":
			fmt.Fprintf(&b, "    var %s: List<%sWhereInput>? = null\n", ident(f.Name), f.Target)
		default:
			fmt.Fprintf(&b, "    var %s: %s? = null\n", ident(f.Name), kt(f.Type))
		}
	}
	b.WriteString("\n    fun toJson(): JsonObject = buildJsonObject {\n")
	for _, f := range m.Filters {
		v := ident(f.Name)
		switch {
		case f.Self == "not":
			fmt.Fprintf(&b, "        not?.let { put(\"not\", it.toJson()) }\n")
		case f.Self != "" || f.Target != "":
			fmt.Fprintf(&b, "        %s?.let { put(%q, JsonArray(it.map { w -> w.toJson() })) }\n", v, f.Name)
		default:
			fmt.Fprintf(&b, "        %s?.let { put(%q, %s) }\n", v, f.Name, enc(f.Type, "it"))
		}
	}
	b.WriteString("    }\n}\n")
	fmt.Fprintf(&b, "\n/** Builds a [%[1]sWhereInput]: `%[2]sWhere { ... }`. */\nfun %[2]sWhere(block: %[1]sWhereInput.() -> Unit): %[1]sWhereInput = %[1]sWhereInput().apply(block)\n", m.Name, clientapi.LowerFirst(m.Name))

	// Ordering.
	fmt.Fprintf(&b, "\n/** Fields %[1]s lists can be ordered by. */\nenum class %[1]sOrderField { %[2]s }\n", m.Name, strings.Join(m.OrderBy, ", "))
	fmt.Fprintf(&b, "\n/** One ordering of a %[1]s list. */\ndata class %[1]sOrder(val field: %[1]sOrderField, val direction: OrderDirection = OrderDirection.ASC) {\n    fun toJson(): JsonObject = buildJsonObject { put(\"field\", JsonPrimitive(field.name)); put(\"direction\", JsonPrimitive(direction.name)) }\n}\n", m.Name)

	// Calls.
	get, list, create, update, del := m.Get(), m.ListDoc(), m.CreateDoc(), m.UpdateDoc(), m.DeleteDoc()
	fmt.Fprintf(&b, `
/** Calls on %[1]s records: `+"`client.%[2]s`"+`. */
class %[1]sApi internal constructor(private val t: KilnTransport, private val subs: Subscriptions) {
    /** The record with [id], or null when it does not exist or the viewer may not read it. */
    suspend fun get(id: String): %[7]s? {
        val data = t.execute(GET, buildJsonObject { put("id", JsonPrimitive(id)) })
        return decodeField(data, %[3]q, %[7]s.serializer().nullable)
    }

    /** One page of records matching [where], in [orderBy] order; pass [Page.nextCursor] as [after] for the next. */
    suspend fun list(
        where: %[1]sWhereInput? = null,
        orderBy: List<%[1]sOrder> = emptyList(),
        first: Int? = null,
        after: String? = null,
        last: Int? = null,
        before: String? = null,
    ): Page<%[7]s> {
        val data = t.execute(LIST, buildJsonObject {
            if (where != null) put("where", where.toJson())
            if (orderBy.isNotEmpty()) put("orderBy", JsonArray(orderBy.map { it.toJson() }))
            if (first != null) put("first", JsonPrimitive(first))
            if (after != null) put("after", JsonPrimitive(after))
            if (last != null) put("last", JsonPrimitive(last))
            if (before != null) put("before", JsonPrimitive(before))
        })
        return decodePage(data[%[2]q] ?: throw KilnException.Decoding("response has no %[2]s"), %[7]s.serializer())
    }

    /** Every record matching [where], fetched [pageSize] at a time as the flow is collected. */
    fun listAll(where: %[1]sWhereInput? = null, orderBy: List<%[1]sOrder> = emptyList(), pageSize: Int = 50): Flow<%[7]s> = flow {
        var after: String? = null
        do {
            val page = list(where = where, orderBy = orderBy, first = pageSize, after = after)
            for (item in page.items) emit(item)
            after = page.nextCursor
        } while (after != null)
    }

    /** Creates a record. */
    suspend fun create(input: Create%[1]sInput): %[7]s {
        val data = t.execute(CREATE, buildJsonObject { put("input", input.toJson()) })
        return decodeField(data, %[4]q, %[7]s.serializer())
    }

    /** Updates a record; with [Update%[1]sInput.version] set, a stale version throws [KilnException.Conflict]. */
    suspend fun update(id: String, input: Update%[1]sInput): %[7]s {
        val data = t.execute(UPDATE, buildJsonObject { put("id", JsonPrimitive(id)); put("input", input.toJson()) })
        return decodeField(data, %[5]q, %[7]s.serializer())
    }

    /** Deletes a record and returns its id. */
    suspend fun delete(id: String): String {
        val data = t.execute(DELETE, buildJsonObject { put("id", JsonPrimitive(id)) })
        return decodeField(data, %[6]q, String.serializer())
    }
`, m.Name, m.List, get.Field, create.Field, update.Field, del.Field, g.typeName(m))
	for _, ev := range m.Events {
		d := m.EventDoc(ev)
		typ, ser := g.typeName(m), g.typeName(m)+".serializer()"
		what := "records " + ev + " from now on that match [where] and that the viewer may read"
		if ev == "deleted" {
			typ, ser = "String", "String.serializer()"
			what = "ids of records deleted from now on that matched [where]"
		}
		fmt.Fprintf(&b, `
    /** Live: %[5]s. Reconnects and resubscribes by itself. */
    fun %[1]s(where: %[2]sWhereInput? = null): Flow<%[3]s> =
        subs.subscribe(%[6]s, buildJsonObject { if (where != null) put("where", where.toJson()) }, %[7]q, %[4]s)
`, ev, m.Name, typ, ser, what, strings.ToUpper(ev), d.Field)
	}
	b.WriteString("\n    internal companion object {\n")
	fmt.Fprintf(&b, "        const val GET = \"%s\"\n        const val LIST = \"%s\"\n        const val CREATE = \"%s\"\n        const val UPDATE = \"%s\"\n        const val DELETE = \"%s\"\n",
		Quote(get.Text), Quote(list.Text), Quote(create.Text), Quote(update.Text), Quote(del.Text))
	for _, ev := range m.Events {
		fmt.Fprintf(&b, "        const val %s = \"%s\"\n", strings.ToUpper(ev), Quote(m.EventDoc(ev).Text))
	}
	b.WriteString("    }\n}\n")
	return b.String()
}

func (g *gen) client() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(`/**
 * The Kiln client: one per app. It loads the session from
 * [KilnConfig.sessionStore] when constructed.
 *
 * ` + "```kotlin" + `
 * val kiln = KilnClient("https://api.example.com/graphql")
 * kiln.auth.signIn("ada@example.com", "correct horse battery")
 * kiln.close() // or KilnClient(...).use { ... }
 * ` + "```" + `
 *
 * Close it when done (a JVM program's main, a server's shutdown): [close]
 * frees its threads and sockets so the JVM can exit at once.
 */
class KilnClient(val config: KilnConfig) : java.io.Closeable {
    constructor(url: String) : this(KilnConfig(url))

    val transport: KilnTransport = KilnTransport(config)
    val auth: Auth = Auth(transport)
    val subscriptions: Subscriptions = Subscriptions(transport)
    val files: Files = Files(transport)
    /** Typed functions for the operations in schema/operations. */
    val operations: Operations = Operations(transport, subscriptions)
`)
	for _, m := range g.api.Models {
		fmt.Fprintf(&b, "    val %s: %sApi = %sApi(transport, subscriptions)\n", ident(m.List), m.Name, m.Name)
	}
	b.WriteString(`
    /** True once [close] ran. */
    val isClosed: Boolean get() = transport.isClosed

    /**
     * Ends this client: closes its subscription sockets (their flows end
     * normally), then, when the OkHttpClient is the one the SDK created
     * ([KilnConfig.httpClient] null), cancels its calls, shuts down its
     * dispatcher's threads and evicts its pooled connections, so that a JVM
     * whose main returns exits at once instead of waiting a minute for
     * OkHttp's idle threads. An OkHttpClient you passed is left running.
     * Later calls throw [KilnException.Closed]; the session stays in the
     * store. Closing twice does nothing. Blocks for at most about two
     * seconds, while subscription sockets close.
     */
    override fun close() {
        if (!transport.markClosed()) return
        subscriptions.closeAll()
        transport.shutdownHttpClient()
    }
}
`)
	return b.String()
}

// Custom operations.

func (g *gen) scalar(name string) string {
	switch name {
	case "Int":
		return "Int"
	case "Float":
		return "Double"
	case "Boolean":
		return "Boolean"
	case "String", "ID", "Cursor":
		return "String"
	case "Time":
		return "KilnTime"
	}
	return "JsonElement"
}

// refType is the Kotlin type of a variable or result type; object types
// are named by nested.
func (g *gen) refType(r *clientapi.TypeRef, nested string) string {
	var n string
	switch {
	case r.Elem != nil:
		n = "List<" + g.refType(r.Elem, nested) + ">"
	case r.Class == "object":
		n = nested
	case (r.Class == "enum" || r.Class == "input") && g.known[r.Named]:
		n = r.Named
	case r.Class == "enum":
		n = "String"
	case r.Class == "input":
		n = "JsonElement"
	default:
		n = g.scalar(r.Named)
	}
	if !r.NonNull {
		n += "?"
	}
	return n
}

// refEnc encodes a variable value v of type r.
func (g *gen) refEnc(r *clientapi.TypeRef, v string) string {
	var e string
	switch {
	case r.Elem != nil:
		e = fmt.Sprintf("JsonArray(%s.map { %s })", v, g.refEnc(r.Elem, "it"))
	case r.Class == "input" && g.known[r.Named]:
		e = v + ".toJson()"
	case r.Class == "enum" && g.known[r.Named]:
		e = "JsonPrimitive(" + v + ".name)"
	case r.Class == "input" || g.scalar(r.Named) == "JsonElement":
		e = v
	case r.Named == "Time":
		e = "JsonPrimitive(" + v + ".toString())"
	default:
		e = "JsonPrimitive(" + v + ")"
	}
	if !r.NonNull && v == "it" {
		return "if (it == null) JsonNull else " + e
	}
	return e
}

func (g *gen) operations() string {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString(`import kotlinx.coroutines.flow.Flow
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.JsonArray
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.JsonPrimitive
import kotlinx.serialization.json.buildJsonObject

/** Typed functions for the operation documents in schema/operations. */
class Operations internal constructor(private val t: KilnTransport, private val subs: Subscriptions) {
`)
	for _, op := range g.api.Operations {
		res := op.Name + "Result"
		fmt.Fprintf(&b, "    /** Runs the %s %s (persisted-query hash [%s_HASH]). */\n", op.Kind, op.Name, strings.ToUpper(op.Name))
		var params []string
		for _, v := range op.Variables {
			t := g.refType(v.Type, "")
			if v.Optional() && v.Type.NonNull {
				t += "?"
			}
			p := ident(v.Name) + ": " + t
			if v.Optional() {
				p += " = null"
			}
			params = append(params, p)
		}
		vars := "buildJsonObject {\n"
		for _, v := range op.Variables {
			if v.Optional() {
				vars += fmt.Sprintf("            if (%s != null) put(%q, %s)\n", ident(v.Name), v.Name, g.refEnc(&clientapi.TypeRef{Named: v.Type.Named, Elem: v.Type.Elem, Class: v.Type.Class, NonNull: true}, ident(v.Name)))
			} else {
				vars += fmt.Sprintf("            put(%q, %s)\n", v.Name, g.refEnc(v.Type, ident(v.Name)))
			}
		}
		vars += "        }"
		if op.Kind == "subscription" {
			fmt.Fprintf(&b, "    fun %s(%s): Flow<%s> {\n        val variables = %s\n        return subs.subscribeData(%s_DOCUMENT, variables, %s.serializer())\n    }\n\n",
				ident(clientapi.LowerFirst(op.Name)), strings.Join(params, ", "), res, vars, strings.ToUpper(op.Name), res)
			continue
		}
		fmt.Fprintf(&b, "    suspend fun %s(%s): %s {\n        val data = t.execute(%s_DOCUMENT, %s, hash = %s_HASH)\n        try {\n            return KilnJson.decodeFromJsonElement(%s.serializer(), data)\n        } catch (e: Exception) {\n            throw KilnException.Decoding(\"cannot decode %s: ${e.message}\", e)\n        }\n    }\n\n",
			ident(clientapi.LowerFirst(op.Name)), strings.Join(params, ", "), res, strings.ToUpper(op.Name), vars, strings.ToUpper(op.Name), res, op.Name)
	}
	b.WriteString("    companion object {\n")
	for _, op := range g.api.Operations {
		fmt.Fprintf(&b, "        /** The text of %[1]s, exactly as the server's allow-list has it. */\n        const val %[2]s_DOCUMENT = \"%[3]s\"\n        /** The sha256 of [%[2]s_DOCUMENT]: its persisted-query id. */\n        const val %[2]s_HASH = %[4]q\n", op.Name, strings.ToUpper(op.Name), Quote(op.Text), op.Hash)
	}
	b.WriteString("    }\n}\n")
	for _, op := range g.api.Operations {
		b.WriteString("\n")
		fmt.Fprintf(&b, "/** The data of [Operations.%s]. */\n", clientapi.LowerFirst(op.Name))
		g.resultClass(&b, "", op.Name+"Result", op.Result)
	}
	return b.String()
}

func (g *gen) resultClass(b *strings.Builder, indent, name string, sels []*clientapi.Selection) {
	fmt.Fprintf(b, "%s@Serializable\n%sdata class %s(\n", indent, indent, name)
	var nested []*clientapi.Selection
	for _, s := range sels {
		t := g.refType(s.Type, clientapi.UpperFirst(s.Key))
		def := ""
		if strings.HasSuffix(t, "?") {
			def = " = null"
		}
		fmt.Fprintf(b, "%s    val %s: %s%s,\n", indent, ident(s.Key), t, def)
		if len(s.Children) > 0 {
			nested = append(nested, s)
		}
	}
	if len(nested) == 0 {
		fmt.Fprintf(b, "%s)\n", indent)
		return
	}
	fmt.Fprintf(b, "%s) {\n", indent)
	for i, s := range nested {
		if i > 0 {
			b.WriteString("\n")
		}
		g.resultClass(b, indent+"    ", clientapi.UpperFirst(s.Key), s.Children)
	}
	fmt.Fprintf(b, "%s}\n", indent)
}
