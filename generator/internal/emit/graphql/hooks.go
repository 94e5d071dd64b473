package graphql

import (
	"kiln/generator/internal/ir"
)

// hooksData is the view of graph/hooks.go (templates/hooks.go.tmpl).
type hooksData struct {
	Module  string
	Models  []hookModel
	Imports []string // the ent packages of the models
}

// hookModel is one model's binding to kiln/runtime/hook.
type hookModel struct {
	*ir.Model
	// Public are the fields an event's record carries: those without
	// read rules of their own.
	Public []*ir.Field
	// Children are the models a delete of this one removes by a database
	// cascade.
	Children []childView
}

// hooksFile emits graph/hooks.go: graph.Code, the app's hooks, triggers
// and periodic jobs, and their binding to ent's mutation hooks.
func hooksFile(s *ir.Schema, module string) string {
	d := hooksData{Module: module}
	for _, m := range s.Models {
		hm := hookModel{Model: m}
		for _, f := range m.Fields {
			if len(f.Rules) == 0 {
				hm.Public = append(hm.Public, f)
			}
		}
		for _, e := range m.Edges {
			if e.Relation != ir.HasMany && e.Relation != ir.HasOne {
				continue
			}
			t := s.Model(e.Target)
			if inv := t.Edge(e.Inverse); inv != nil && inv.OnDelete == "CASCADE" {
				hm.Children = append(hm.Children, childView{Target: t, FK: inv.EntName(), Cascade: true})
			}
		}
		d.Models = append(d.Models, hm)
		d.Imports = append(d.Imports, m.Package())
	}
	return render("hooks.go.tmpl", d)
}
