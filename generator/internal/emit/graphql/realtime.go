package graphql

import (
	"fmt"
	"strings"

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

// subscriptionSDL is the Subscription type of graph/kiln.graphql.
func subscriptionSDL(s *ir.Schema) string {
	rt := realtimeModels(s)
	if len(rt) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\ntype Subscription {\n")
	for _, m := range rt {
		lf := lowerFirst(m.Name)
		if m.Publishes("created") {
			fmt.Fprintf(&b, "  \"%[1]s records created from now on that match where and that the viewer may read.\"\n  %[2]sCreated(where: %[1]sWhereInput): %[1]s!\n", m.Name, lf)
		}
		if m.Publishes("updated") {
			fmt.Fprintf(&b, "  \"%[1]s records updated from now on that match where (after the update) and that the viewer may read.\"\n  %[2]sUpdated(where: %[1]sWhereInput): %[1]s!\n", m.Name, lf)
		}
		if m.Publishes("deleted") {
			fmt.Fprintf(&b, "  \"Ids of %[1]s records deleted from now on that matched where and that the viewer could read.\"\n  %[2]sDeleted(where: %[1]sWhereInput): ID!\n", m.Name, lf)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// realtimeFile emits graph/realtime.go: publishers on every write path and
// the subscription resolvers.
func realtimeFile(s *ir.Schema, module string) string {
	var b strings.Builder
	rt := realtimeModels(s)
	fmt.Fprintf(&b, `package graph

import (
	"context"

	"github.com/google/uuid"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
%[2]s)

var _ uuid.UUID

// Topic is the pub/sub topic of a model's event: "kiln:<Type>:<event>",
// with the record as JSON (for deleted: as it was before the delete).
func Topic(typ, event string) string { return "kiln:" + typ + ":" + event }

// SetupEvents registers publishers for the @realtime models on client: every
// write through it (generated mutations, hand-written code, cascades)
// publishes after its transaction commits.
func SetupEvents(client *ent.Client, events Events) {
	if events == nil {
		return
	}
`, module, modelImports(s, module))
	for _, m := range rt {
		fmt.Fprintf(&b, "\tclient.%[1]s.Use(publisher%[1]s(client, events))\n", m.Name)
	}
	// Models that cascade to realtime models also need a hook.
	for _, m := range s.Models {
		if len(m.Realtime) == 0 && len(cascadeEdges(s, m)) > 0 {
			fmt.Fprintf(&b, "\tclient.%[1]s.Use(cascader%[1]s(client, events))\n", m.Name)
		}
	}
	b.WriteString("}\n")
	for _, m := range rt {
		publisherFunc(&b, s, m)
	}
	for _, m := range s.Models {
		if len(m.Realtime) == 0 && len(cascadeEdges(s, m)) > 0 {
			cascaderFunc(&b, s, m)
		}
	}
	for _, m := range s.Models {
		collectFunc(&b, s, m)
	}
	if len(rt) > 0 {
		b.WriteString("\n// Subscription returns the subscription resolver.\nfunc (r *Resolver) Subscription() SubscriptionResolver { return &subscriptionResolver{r} }\n\ntype subscriptionResolver struct{ *Resolver }\n")
	}
	for _, m := range rt {
		lf := lowerFirst(m.Name)
		pkg := strings.ToLower(m.Name)
		sqlMatch := fmt.Sprintf(`func(ctx context.Context, n *ent.%[1]s) (bool, error) {
		q := r.Client.%[1]s.Query().Where(%[2]s.ID(n.ID))
		if where != nil {
			p, err := where.P()
			if err != nil {
				return false, err
			}
			q.Where(p)
		}
		return q.Exist(ctx)
	}`, m.Name, pkg)
		if m.Publishes("created") {
			fmt.Fprintf(&b, "\n// %[1]sCreated streams new %[2]s records.\nfunc (r *subscriptionResolver) %[1]sCreated(ctx context.Context, where *ent.%[2]sWhereInput) (<-chan *ent.%[2]s, error) {\n\treturn watch(ctx, r.Resolver, %[2]q, \"created\", where, %[3]sAllows, %[4]s, record[ent.%[2]s])\n}\n", upperFirst(lf), m.Name, lf, sqlMatch)
		}
		if m.Publishes("updated") {
			fmt.Fprintf(&b, "\n// %[1]sUpdated streams updated %[2]s records.\nfunc (r *subscriptionResolver) %[1]sUpdated(ctx context.Context, where *ent.%[2]sWhereInput) (<-chan *ent.%[2]s, error) {\n\treturn watch(ctx, r.Resolver, %[2]q, \"updated\", where, %[3]sAllows, %[4]s, record[ent.%[2]s])\n}\n", upperFirst(lf), m.Name, lf, sqlMatch)
		}
		if m.Publishes("deleted") {
			fmt.Fprintf(&b, "\n// %[1]sDeleted streams ids of deleted %[2]s records.\nfunc (r *subscriptionResolver) %[1]sDeleted(ctx context.Context, where *ent.%[2]sWhereInput) (<-chan uuid.UUID, error) {\n\treturn watch(ctx, r.Resolver, %[2]q, \"deleted\", where, %[3]sAllows, nil, func(n *ent.%[2]s) uuid.UUID { return n.ID })\n}\n", upperFirst(lf), m.Name, lf)
		}
	}
	viewerFreeFields(&b, rt) // realtime_runtime.go reads it, even when empty
	return b.String()
}

// viewerFreeFields emits realtimeViewerFree: per subscription field, the
// fields of its record whose value is the same for every viewer who may
// read the record (see ViewerIndependent): the record's own scalar and enum
// columns without a field-level @auth. Relations, files and anything else
// are left out, so a selection that names them is not shared across
// viewers. A ...Deleted subscription returns an ID: no fields.
func viewerFreeFields(b *strings.Builder, rt []*ir.Model) {
	b.WriteString(`
// realtimeViewerFree lists, per subscription field, the fields of its
// record that read only the record's own columns and carry no field-level
// @auth: their values are the same for every viewer who may read the
// record. Nil for subscriptions that return an ID.
var realtimeViewerFree = map[string]map[string]bool{
`)
	for _, m := range rt {
		lf := lowerFirst(m.Name)
		names := []string{"__typename", "id", "createdAt", "updatedAt", "version"}
		for _, f := range m.Fields {
			if len(f.Rules) == 0 {
				names = append(names, f.Name)
			}
		}
		var set strings.Builder
		for i, n := range names {
			if i > 0 {
				set.WriteString(", ")
			}
			fmt.Fprintf(&set, "%q: true", n)
		}
		for _, ev := range []string{"created", "updated"} {
			if m.Publishes(ev) {
				fmt.Fprintf(b, "\t%q: {%s},\n", lf+upperFirst(ev), set.String())
			}
		}
		if m.Publishes("deleted") {
			fmt.Fprintf(b, "\t%q: nil,\n", lf+"Deleted")
		}
	}
	b.WriteString("}\n")
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

func publisherFunc(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	pkg := strings.ToLower(m.Name)
	fmt.Fprintf(b, `
func publisher%[1]s(root *ent.Client, events Events) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			pm, ok := m.(*ent.%[1]sMutation)
			if !ok {
				return next.Mutate(ctx, m)
			}
			sys := access.System(ctx)
			var pending []pendingEvent
			var touched []uuid.UUID
			switch {
			case m.Op().Is(ent.OpDelete | ent.OpDeleteOne):
				ids, err := pm.IDs(sys)
				if err != nil {
					return nil, err
				}
				pending, err = collect%[1]s(sys, pm.Client(), root, ids, map[uuid.UUID]bool{})
				if err != nil {
					return nil, err
				}
			case m.Op().Is(ent.OpUpdate):
				ids, err := pm.IDs(sys)
				if err != nil {
					return nil, err
				}
				touched = ids
			}
			v, err := next.Mutate(ctx, m)
			if err != nil {
				return v, err
			}
			switch {
			case m.Op().Is(ent.OpCreate) && %[3]v:
				if n, ok := v.(*ent.%[1]s); ok {
					pending = append(pending, pendingEvent{typ: %[1]q, event: "created", record: n})
				}
			case m.Op().Is(ent.OpUpdateOne) && %[4]v:
				if n, ok := v.(*ent.%[1]s); ok {
					pending = append(pending, pendingEvent{typ: %[1]q, event: "updated", record: n})
				}
			case m.Op().Is(ent.OpUpdate) && %[4]v && len(touched) > 0:
				pending = append(pending, pendingEvent{typ: %[1]q, event: "updated", reload: func(ctx context.Context) ([]any, error) {
					ns, err := root.%[1]s.Query().Where(%[2]s.IDIn(touched...)).All(access.System(ctx))
					return anys(ns), err
				}})
			}
			afterCommit(ctx, m, events, pending)
			return v, nil
		})
	}
}
`, m.Name, pkg, m.Publishes("created"), m.Publishes("updated"))
}

func cascaderFunc(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	fmt.Fprintf(b, `
// cascader%[1]s publishes the events of records that a delete of %[1]s
// removes or changes through foreign keys.
func cascader%[1]s(root *ent.Client, events Events) ent.Hook {
	return func(next ent.Mutator) ent.Mutator {
		return ent.MutateFunc(func(ctx context.Context, m ent.Mutation) (ent.Value, error) {
			pm, ok := m.(*ent.%[1]sMutation)
			if !ok || !m.Op().Is(ent.OpDelete|ent.OpDeleteOne) {
				return next.Mutate(ctx, m)
			}
			sys := access.System(ctx)
			ids, err := pm.IDs(sys)
			if err != nil {
				return nil, err
			}
			pending, err := collect%[1]s(sys, pm.Client(), root, ids, map[uuid.UUID]bool{})
			if err != nil {
				return nil, err
			}
			v, err := next.Mutate(ctx, m)
			if err != nil {
				return v, err
			}
			afterCommit(ctx, m, events, pending)
			return v, nil
		})
	}
}
`, m.Name)
}

// collectFunc emits collect<Model>: the events a delete of the given ids
// causes: deleted events of the records themselves (when realtime) and of
// everything cascading from them, updated events of records whose
// reference is set to null.
func collectFunc(b *strings.Builder, s *ir.Schema, m *ir.Model) {
	pkg := strings.ToLower(m.Name)
	fmt.Fprintf(b, "\nfunc collect%[1]s(ctx context.Context, c, root *ent.Client, ids []uuid.UUID, seen map[uuid.UUID]bool) ([]pendingEvent, error) {\n\t_ = root\n\tvar out []pendingEvent\n\tids = unseen(ids, seen)\n\tif len(ids) == 0 {\n\t\treturn nil, nil\n\t}\n\t_ = %[2]s.IDIn\n", m.Name, pkg)
	if m.Publishes("deleted") {
		fmt.Fprintf(b, "\tns, err := c.%[1]s.Query().Where(%[2]s.IDIn(ids...)).All(ctx)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n\tfor _, n := range ns {\n\t\tout = append(out, pendingEvent{typ: %[1]q, event: \"deleted\", record: n})\n\t}\n", m.Name, pkg)
	}
	for _, e := range cascadeEdges(s, m) {
		t := s.Model(e.Target)
		inv := t.Edge(e.Inverse)
		tpkg := strings.ToLower(t.Name)
		fmt.Fprintf(b, "\t{\n\t\tchild, err := c.%[1]s.Query().Where(%[2]s.%[3]sIDIn(ids...)).IDs(ctx)\n\t\tif err != nil {\n\t\t\treturn nil, err\n\t\t}\n", t.Name, tpkg, entName(inv.Name))
		if inv.OnDelete == "CASCADE" {
			fmt.Fprintf(b, "\t\tmore, err := collect%s(ctx, c, root, child, seen)\n\t\tif err != nil {\n\t\t\treturn nil, err\n\t\t}\n\t\tout = append(out, more...)\n", t.Name)
		} else if t.Publishes("updated") {
			fmt.Fprintf(b, "\t\tif len(child) > 0 {\n\t\t\tout = append(out, pendingEvent{typ: %[1]q, event: \"updated\", reload: func(ctx context.Context) ([]any, error) {\n\t\t\t\tns, err := root.%[1]s.Query().Where(%[2]s.IDIn(child...)).All(access.System(ctx))\n\t\t\t\treturn anys(ns), err\n\t\t\t}})\n\t\t}\n", t.Name, tpkg)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("\treturn out, nil\n}\n")
}
