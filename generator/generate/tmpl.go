package generate

import (
	"bytes"
	"embed"
	"text/template"
)

// templateFS holds the Go files the pipeline writes itself
// (migrations/embed.go, graph/operations.go); the emitters hold theirs.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

var tmpl = template.Must(template.ParseFS(templateFS, "templates/*.tmpl"))

// render executes the named template with data; a failing template is a
// Kiln bug.
func render(name string, data any) string {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
		panic("kiln: template " + name + ": " + err.Error())
	}
	return b.String()
}
