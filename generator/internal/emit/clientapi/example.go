package clientapi

import "kiln/generator/internal/ir"

// Example picks the model the SDK READMEs use in their examples: the first
// model with realtime events, else the first model.
func (a *API) Example() *Model {
	for _, m := range a.Models {
		if len(m.Events) > 0 {
			return m
		}
	}
	if len(a.Models) > 0 {
		return a.Models[0]
	}
	return nil
}

// RequiredCreate lists the create fields without a default.
func (m *Model) RequiredCreate() []Field {
	var out []Field
	for _, f := range m.Create {
		if !f.Nullable {
			out = append(out, f)
		}
	}
	return out
}

// FirstString returns the first String field of the model (for filter
// examples), or nil.
func (m *Model) FirstString() *Field {
	for i, f := range m.Fields {
		if f.Type.Kind == ir.String && !f.Type.List {
			return &m.Fields[i]
		}
	}
	return nil
}

// FileExample picks the model and File field the SDK READMEs attach an
// upload to: the first File field that updates can set (nil without one).
// Output reports whether the field is in the model type (no own @auth).
func (a *API) FileExample() (m *Model, f *ir.FileField, output bool) {
	for _, m := range a.Models {
		for _, f := range m.IR.Files {
			if !f.Readonly {
				return m, f, len(f.Rules) == 0
			}
		}
	}
	return nil, nil, false
}
