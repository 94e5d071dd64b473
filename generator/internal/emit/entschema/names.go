package entschema

import "kiln/generator/internal/ir"

// The names other emitters still take from here (they move to the IR's
// methods with the GraphQL emitter's templates).

// Column is the ent field name (and SQL column) of a GraphQL field name.
func Column(name string) string { return ir.Snake(name) }

// OrderField is the entgql order field name of a GraphQL field name.
func OrderField(name string) string { return ir.OrderField(name) }

// Plural is the plural of a type name, for list fields.
func Plural(s string) string { return ir.Plural(s) }

// PascalValue turns an enum value into a Go identifier suffix.
func PascalValue(v string) string { return ir.PascalValue(v) }

// FilesTable is the table of the built-in File model.
const FilesTable = ir.FilesTable

// LinkType is the ent type of the join table of a list file field.
func LinkType(m *ir.Model, f *ir.FileField) string { return m.LinkType(f) }

// LinkEdge is the ent edge from a model to the join rows of a list file field.
func LinkEdge(f *ir.FileField) string { return f.LinkEdge() }

// FileBackEdge is the ent edge from File to the records referencing it.
func FileBackEdge(m *ir.Model, f *ir.FileField) string { return m.FileBackEdge(f) }

// FileColumn is the foreign-key field of a single file field.
func FileColumn(f *ir.FileField) string { return f.FKColumn() }
