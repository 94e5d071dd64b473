// Package migrations embeds the versioned SQL migrations that `make generate`
// writes for each dialect (goose format), so the server applies them at
// start without files on disk.
package migrations

import "embed"

// FS holds sqlite/*.sql and postgres/*.sql.
//
//go:embed sqlite postgres
var FS embed.FS
