package graphql

import (
	"sort"

	"kiln/generator/internal/ir"
)

// resolversData is graph/<model>.resolvers.go
// (templates/model.resolvers.go.tmpl): the model's query, create, update
// and delete resolvers, and the resolvers of its file lists.
type resolversData struct {
	Module string
	Model  *ir.Model
	// Create are the create input's fields, owner fields first (who creates
	// decides before anything is looked up); Update the update input's.
	Create, Update []inputView
	// Links are the many-to-many edges, set by ids.
	Links []linkView
	// Files are the file fields; FileLists the list ones (their own
	// resolvers and join rows).
	Files, FileLists []*ir.FileField
	// DefaultPkgs are the ent packages of the other models the resolvers
	// query: those omitted @actor ids default from, and those whose
	// records block a delete.
	DefaultPkgs []string
	// Restrict are the relations that block deleting a record while
	// records refer to it (@belongsTo(onDelete: RESTRICT) to the model).
	Restrict []restrictView
}

// restrictView is a relation that blocks deleting a record of the model:
// records of Model refer to it through Edge (@belongsTo(onDelete:
// RESTRICT)); Field is the model's own side of the relation (the field a
// refused delete names).
type restrictView struct {
	Model *ir.Model
	Edge  *ir.Edge
	Field string
}

// refCheck is the check of the ids a write links to: checkRefs<Target>
// (readable records) and, for @actor relations, checkActor<Target> (records
// the viewer owns).
type refCheck struct {
	Target string
	Field  string // the input field, for errors
	Args   string // the Go expression of the ids
	Actor  bool
}

// linkView is a many-to-many edge set by ids: IDs is the create input's
// Go field (FollowerIDs), Add<IDs> and Remove<IDs> the update input's.
type linkView struct {
	Edge           *ir.Edge
	IDs            string
	Create, Update refCheck
}

// inputView is how a resolver applies one input field.
type inputView struct {
	Field *ir.Field
	// Owner: set from the viewer on create, changed by admins only.
	Owner bool
	// Refuse are the refusals of a value that the viewer may not set
	// ("only the server sets verified"), checked before anything else.
	Refuse []string
	// Check is the check of a reference (foreign keys): the record must be
	// one the viewer may read (and own, for @actor relations).
	Check *refCheck
	// ListKey ("Post.tags") names the @length bounds of a list.
	ListKey string
	// Set is how the value is set: "value" (c.SetX(input.X)), "ptr"
	// (if input.X != nil: c.SetX(*input.X)), "slice" (if input.X != nil:
	// c.SetX(input.X)); on update, Clear: null clears the field.
	Set   string
	Clear bool
	// Default, for an @actor relation to a model with one record per user,
	// fills an omitted id with the viewer's record (authorID: the viewer's
	// Profile).
	Default *actorDefault
}

// actorDefault is the viewer's record an omitted @actor id defaults to.
type actorDefault struct {
	Target *ir.Model
	// Owner is the target's owner field's Go name in ent predicates.
	Owner string
}

// actorDefaultOf is how an omitted @actor id of f defaults (nil: it does
// not; see ir.Schema.ActorDefault).
func actorDefaultOf(s *ir.Schema, f *ir.Field) *actorDefault {
	t := s.ActorDefault(f)
	if t == nil {
		return nil
	}
	return &actorDefault{Target: t, Owner: t.PerUserOwner().GoName()}
}

func resolversView(s *ir.Schema, m *ir.Model, module string) resolversData {
	d := resolversData{Module: module, Model: m}
	ordered := append([]*ir.Field{}, m.Fields...)
	sort.SliceStable(ordered, func(i, j int) bool { return ordered[i].Owner && !ordered[j].Owner })
	for _, f := range ordered {
		v := inputView{Field: f, Owner: f.Owner}
		if f.Owner {
			d.Create = append(d.Create, v)
			continue
		}
		if f.ServerOnly {
			v.Refuse = append(v.Refuse, "only the server sets "+f.Name)
		}
		v.Default = actorDefaultOf(s, f)
		if f.Edge != nil {
			args := "input." + f.GoName()
			if f.Nullable || v.Default != nil {
				args = "*" + args
			}
			v.Check = &refCheck{Target: f.Edge.Target, Field: f.Name, Args: args, Actor: f.Edge.Actor}
		}
		if f.List && !f.Validate.Empty() {
			v.ListKey = m.Name + "." + f.Name
		}
		switch {
		case f.List || f.Kind == ir.JSON:
			v.Set = "slice"
		case f.Nullable || f.Default != nil || v.Default != nil:
			v.Set = "ptr"
		default:
			v.Set = "value"
		}
		d.Create = append(d.Create, v)
	}
	for _, f := range updatable(m) {
		v := inputView{Field: f, Clear: f.Nullable, Set: "ptr"}
		if f.Owner {
			v.Refuse = append(v.Refuse, "only admins may change "+f.Name)
		}
		if f.ServerOnly {
			v.Refuse = append(v.Refuse, "only the server sets "+f.Name)
		}
		if f.Edge != nil {
			v.Check = &refCheck{Target: f.Edge.Target, Field: f.Name, Args: "*ref", Actor: f.Edge.Actor}
		}
		if f.List && !f.Validate.Empty() {
			v.ListKey = m.Name + "." + f.Name
		}
		if f.List || f.Kind == ir.JSON {
			v.Set = "slice"
		}
		d.Update = append(d.Update, v)
	}
	for _, e := range m.Edges {
		if e.Relation == ir.ManyToMany {
			ids := ir.GoName(e.IDsName())
			d.Links = append(d.Links, linkView{Edge: e, IDs: ids,
				Create: refCheck{Target: e.Target, Field: e.IDsName(), Args: "input." + ids + "...", Actor: e.Actor},
				Update: refCheck{Target: e.Target, Field: "add" + ir.UpperFirst(e.IDsName()), Args: "input.Add" + ids + "...", Actor: e.Actor}})
		}
	}
	for _, v := range d.Create {
		if v.Default != nil && v.Default.Target != m && !contains(d.DefaultPkgs, v.Default.Target.Package()) {
			d.DefaultPkgs = append(d.DefaultPkgs, v.Default.Target.Package())
		}
	}
	d.Files = m.Files
	for _, f := range m.Files {
		if f.List {
			d.FileLists = append(d.FileLists, f)
		}
	}
	for _, dm := range s.Models {
		for _, e := range dm.Edges {
			if e.Relation != ir.BelongsTo || e.Target != m.Name || e.OnDelete != "RESTRICT" {
				continue
			}
			d.Restrict = append(d.Restrict, restrictView{Model: dm, Edge: e, Field: e.Inverse})
			if dm != m && !contains(d.DefaultPkgs, dm.Package()) {
				d.DefaultPkgs = append(d.DefaultPkgs, dm.Package())
			}
		}
	}
	return d
}

// refTargets are the models some write path links to by id (foreign keys
// and many-to-many edges): those that need checkRefs<Model>.
func refTargets(s *ir.Schema) map[string]bool {
	out := map[string]bool{}
	for _, m := range s.Models {
		for _, f := range m.Fields {
			if f.Edge != nil {
				out[f.Edge.Target] = true
			}
		}
		for _, e := range m.Edges {
			if e.Relation == ir.ManyToMany {
				out[e.Target] = true
			}
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
