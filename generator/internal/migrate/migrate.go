// Package migrate plans versioned SQL migrations for SQLite and PostgreSQL.
package migrate

import (
	"context"
	"time"

	"entgo.io/ent/dialect/sql/schema"
)

// Config for Plan.
type Config struct {
	Dir              string
	Tables           []*schema.Table
	Name             string
	Now              func() time.Time
	AllowDestructive bool
}

// Result of planning one dialect.
type Result struct {
	Dialect string
	File    string
	Changes int
}

// Plan writes new migration files.
func Plan(ctx context.Context, cfg Config) ([]Result, error) { return nil, nil }
