package entschema

import (
	"bytes"
	"embed"
	"strings"
	"text/template"
)

// templateFS holds the Go files this package emits (templates/*.go.tmpl).
// They list every import they may need; the writer prunes the unused ones.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
	// comment continues a text over several lines of a // comment.
	"comment": func(s string) string { return strings.ReplaceAll(s, "\n", "\n// ") },
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
