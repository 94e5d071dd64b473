package entschema

// authSource is ent/schema/kiln_auth.go: Kiln's own tables in the app's ent
// schema (so its migrations create them), defined once in
// kiln/runtime/store/schema, where the server's store client comes from.
const authSource = `package schema

import storeschema "kiln/runtime/store/schema"

// Kiln's own tables: accounts, sessions, roles, one-time tokens and
// idempotency keys. The server reads and writes them through
// kiln/runtime/store; they are not part of the app's GraphQL API.
type (
	AuthUser       struct{ storeschema.AuthUser }
	AuthSession    struct{ storeschema.AuthSession }
	AuthRole       struct{ storeschema.AuthRole }
	AuthToken      struct{ storeschema.AuthToken }
	IdempotencyKey struct{ storeschema.IdempotencyKey }
)
`
