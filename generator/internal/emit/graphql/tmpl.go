package graphql

import (
	"bytes"
	"embed"
	"strings"
	"text/template"

	"kiln/generator/internal/ir"
)

// templateFS holds the files this package emits, as text/template files
// (templates/<file>.tmpl, one per generated file). Go templates list every
// import they may need; the writer prunes the unused ones (goimports), so
// no placeholder uses are needed.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

// The templates' functions only format: the view models hold the names
// (from the IR's naming methods) and every decision.
var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"lowerFirst": ir.LowerFirst,
	"upperFirst": ir.UpperFirst,
	"join":       strings.Join,
}).ParseFS(templateFS, "templates/*.tmpl"))

// render executes the named template with data; a failing template is a
// Kiln bug, reported as a panic by the emitter's tests.
func render(name string, data any) string {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		panic("kiln: template " + name + ": " + err.Error())
	}
	return b.String()
}
