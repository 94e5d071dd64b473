package graphql

import (
	"slices"

	"kiln/generator/internal/ir"
)

// accountData is graph/account.go (templates/account.go.tmpl).
type accountData struct {
	Module string
	// Owned are the models with owner fields, those that reference others
	// first, so that a user's own records never block each other's
	// deletion (RESTRICT).
	Owned []ownedView
}

// ownedView is a model whose records users own, through Fields.
type ownedView struct {
	Model  *ir.Model
	Fields []*ir.Field
}

// accountFile emits graph/account.go: DeleteOwned, what deleting an account
// does to the records its user owns (the models with an owner rule).
func accountFile(s *ir.Schema, module string) string {
	d := accountData{Module: module}
	order := seedOrder(s)
	slices.Reverse(order)
	for _, m := range order {
		if owners := m.OwnerFields(); len(owners) > 0 {
			d.Owned = append(d.Owned, ownedView{m, owners})
		}
	}
	return render("account.go.tmpl", d)
}
