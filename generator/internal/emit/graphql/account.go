package graphql

import (
	"fmt"
	"slices"
	"strings"

	"kiln/generator/internal/ir"
)

// accountFile emits graph/account.go: DeleteOwned, what deleting an account
// does to the records its user owns (the models with an owner rule).
func accountFile(s *ir.Schema, module string) string {
	var b strings.Builder
	// Delete models that reference others before their targets, so that a
	// user's own records never block each other (RESTRICT).
	order := seedOrder(s)
	slices.Reverse(order)
	var imports, deletes, anonymize strings.Builder
	for _, m := range order {
		owners := m.OwnerFields()
		if len(owners) == 0 {
			continue
		}
		pkg := strings.ToLower(m.Name)
		fmt.Fprintf(&imports, "\t%q\n", module+"/ent/"+pkg)
		for _, f := range owners {
			fmt.Fprintf(&deletes, "\tif _, err := client.%[1]s.Delete().Where(%[2]s.%[3]s(uid)).Exec(ctx); err != nil {\n\t\treturn fmt.Errorf(\"delete the user's %[1]s records: %%w\", err)\n\t}\n", m.Name, pkg, entName(f.Name))
			fmt.Fprintf(&anonymize, "\tif _, err := client.%[1]s.Update().Where(%[2]s.%[3]s(uid)).Set%[3]s(gone).Save(ctx); err != nil {\n\t\treturn fmt.Errorf(\"anonymise the user's %[1]s records: %%w\", err)\n\t}\n", m.Name, pkg, entName(f.Name))
		}
	}
	owned := ""
	if deletes.Len() > 0 {
		owned = `	uid := userID.String()
	if anonymize {
		// No viewer's id (a UUID) equals this, and it stays unique per user.
		gone := "deleted:" + uid
` + indent(anonymize.String()) + `		return nil
	}
` + deletes.String()
	} else {
		owned = "\tif anonymize {\n\t\treturn nil\n\t}\n"
	}
	fmt.Fprintf(&b, `package graph

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"%[1]s/ent"
	"kiln/runtime/access"
	"kiln/runtime/apierror"
	"%[1]s/ent/file"
%[2]s)

// DeleteOwned runs when an account is deleted, in the deletion's transaction
// (client is the transaction's). By default the records the user owns are
// deleted (the database's cascades take what depends on them), and the
// user's files that nothing references any more are handed to the file
// janitor, which removes their stored objects on its next run. With
// anonymize the records stay, owned by nobody ("deleted:<user id>"), and
// the files stay with them.
func DeleteOwned(ctx context.Context, client *ent.Client, userID uuid.UUID, anonymize bool) error {
	ctx = access.System(ctx)
%[3]s	// Claimed long ago: the janitor finishes such claims (object, then row).
	if _, err := client.File.Update().Where(file.UploaderID(userID), file.StatusNEQ(file.StatusDeleting), file.Not(fileReferenced())).
		SetStatus(file.StatusDeleting).SetActiveAt(time.Unix(0, 0)).Save(ctx); err != nil {
		return fmt.Errorf("release the user's files: %%w", err)
	}
	return nil
}
`, module, imports.String(), owned)
	return b.String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "\t" + l
		}
	}
	return strings.Join(lines, "")
}
