package graphql

import (
	"sort"

	"kiln/generator/internal/ir"
)

// realtimeModels lists the models with @realtime.
func realtimeModels(s *ir.Schema) []*ir.Model {
	var out []*ir.Model
	for _, m := range s.Models {
		if len(m.Realtime) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// realtimeFile emits graph/realtime.go: the @realtime models registered
// with the realtime runtime, publishers on every write path, and the
// subscription resolvers (templates/realtime.go.tmpl).
func realtimeFile(s *ir.Schema, module string) string {
	return render("realtime.go.tmpl", realtimeView(s, module))
}

type realtimeData struct {
	Module string
	// Models publish events; Cascaders do not, but their deletes make
	// records of realtime models go or change.
	Models, Cascaders []*ir.Model
	Collects          []collectView
	Events            []subscriptionView
	// Imports are the ent packages of the models the code names.
	Imports []string
}

// collectView is collect<Model>: the events a delete of its ids causes.
type collectView struct {
	Model    *ir.Model
	Deleted  bool
	Children []childView
}

type childView struct {
	Target *ir.Model
	FK     string // ent name of the child's reference, e.g. "Author"
	// Cascade: the children go too; otherwise their reference is set to
	// null and they publish updated.
	Cascade bool
}

// subscriptionView is one subscription field.
type subscriptionView struct {
	Model *ir.Model
	Event string // created, updated, deleted
	// Free lists the fields that are the same for every viewer who may
	// read the record (nil for deleted, which returns an ID).
	Free []string
}

func realtimeView(s *ir.Schema, module string) realtimeData {
	d := realtimeData{Module: module, Models: realtimeModels(s)}
	for _, m := range s.Models {
		if len(m.Realtime) == 0 && len(cascadeEdges(s, m)) > 0 {
			d.Cascaders = append(d.Cascaders, m)
		}
	}
	// collect functions: those the publishers and cascaders call, and those
	// they call in turn.
	seen := map[string]bool{}
	var visit func(m *ir.Model)
	visit = func(m *ir.Model) {
		if seen[m.Name] {
			return
		}
		seen[m.Name] = true
		c := collectView{Model: m, Deleted: m.Publishes("deleted")}
		for _, e := range cascadeEdges(s, m) {
			t := s.Model(e.Target)
			inv := t.Edge(e.Inverse)
			c.Children = append(c.Children, childView{Target: t, FK: inv.EntName(), Cascade: inv.OnDelete == "CASCADE"})
		}
		d.Collects = append(d.Collects, c)
		for _, ch := range c.Children {
			if ch.Cascade {
				visit(ch.Target)
			}
		}
	}
	for _, m := range append(append([]*ir.Model{}, d.Models...), d.Cascaders...) {
		visit(m)
	}
	pkgs := map[string]bool{}
	for _, m := range d.Models {
		pkgs[m.Package()] = true
	}
	for _, c := range d.Collects {
		pkgs[c.Model.Package()] = true
		for _, ch := range c.Children {
			pkgs[ch.Target.Package()] = true
		}
	}
	for p := range pkgs {
		d.Imports = append(d.Imports, p)
	}
	sort.Strings(d.Imports)
	for _, m := range d.Models {
		free := []string{"__typename", "id", "createdAt", "updatedAt", "version"}
		for _, f := range m.Fields {
			if len(f.Rules) == 0 {
				free = append(free, f.Name)
			}
		}
		for _, ev := range []string{"created", "updated", "deleted"} {
			if !m.Publishes(ev) {
				continue
			}
			v := subscriptionView{Model: m, Event: ev}
			if ev != "deleted" {
				v.Free = free
			}
			d.Events = append(d.Events, v)
		}
	}
	return d
}

// cascadeEdges are the edges whose records go (CASCADE) or change
// (SET_NULL) when a record of m is deleted, in a way subscribers see: a
// cascaded delete that publishes (here or further down), or a reference set
// to null on a model that publishes updates.
func cascadeEdges(s *ir.Schema, m *ir.Model) []*ir.Edge {
	return cascadeEdgesSeen(s, m, map[string]bool{})
}

func cascadeEdgesSeen(s *ir.Schema, m *ir.Model, seen map[string]bool) []*ir.Edge {
	if seen[m.Name] {
		return nil
	}
	seen[m.Name] = true
	defer delete(seen, m.Name)
	var out []*ir.Edge
	for _, e := range m.Edges {
		if e.Relation != ir.HasMany && e.Relation != ir.HasOne {
			continue
		}
		t := s.Model(e.Target)
		inv := t.Edge(e.Inverse)
		if inv == nil {
			continue
		}
		switch inv.OnDelete {
		case "CASCADE":
			if t.Publishes("deleted") || t.Name == m.Name || len(cascadeEdgesSeen(s, t, seen)) > 0 {
				out = append(out, e)
			}
		case "SET_NULL":
			if t.Publishes("updated") {
				out = append(out, e)
			}
		}
	}
	return out
}
