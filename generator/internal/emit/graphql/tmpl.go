package graphql

import (
	"bytes"
	"embed"
	"strings"
	"text/template"
)

// templates holds the Go files this package emits, as text/template files
// (templates/*.go.tmpl). They list every import they may need; the writer
// prunes the unused ones (goimports), so no placeholder uses are needed.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"lowerFirst": lowerFirst,
	"upperFirst": upperFirst,
	"entName":    entName,
	"goName":     goName,
	"lower":      strings.ToLower,
	"quote":      func(s string) string { return `"` + s + `"` },
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
