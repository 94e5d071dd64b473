package generate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirections guards the layering (DESIGN.md): an app's main ->
// server -> runtime; graph (generated) -> runtime, ent; the server and the
// runtime never import an app's generated packages (graph, ent,
// migrations), the runtime never imports the server, and the generator
// imports none of them (test code may).
func TestImportDirections(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", "kiln/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	app := []string{"kiln/graph", "kiln/ent", "kiln/migrations"}
	forbidden := map[string][]string{
		"kiln/generator": {"kiln/server", "kiln/graph", "kiln/ent", "kiln/runtime"},
		"kiln/ent":       {"kiln/server", "kiln/graph"},
		"kiln/graph":     {"kiln/server"},
		"kiln/server":    app,
		"kiln/runtime":   append([]string{"kiln/server"}, app...),
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ": ")
		for prefix, bad := range forbidden {
			if pkg != prefix && !strings.HasPrefix(pkg, prefix+"/") {
				continue
			}
			checked++
			for _, imp := range strings.Fields(imports) {
				for _, b := range bad {
					if imp == b || strings.HasPrefix(imp, b+"/") {
						t.Errorf("%s imports %s", pkg, imp)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d packages checked; go list output:\n%s", checked, out)
	}
}
