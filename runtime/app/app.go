// Package app is the contract between Kiln's server (kiln/server) and an
// app's generated code: the services the server sets up (Services), and
// the parts the app builds on them (Parts). An app's main passes its
// Definition, which the generated code provides as graph.App(), to
// server.Main. The server never imports an app's generated packages.
package app

import (
	"context"
	"io/fs"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"kiln/runtime/accounts"
	"kiln/runtime/files"
	"kiln/runtime/job"
	"kiln/runtime/realtime"
	"kiln/runtime/store"
)

// Definition is an app: its migrations and how to build it.
type Definition struct {
	// Migrations are the app's versioned SQL migrations (its migrations
	// package's FS), which create Kiln's tables too.
	Migrations fs.FS
	// Build makes the app's GraphQL layer on the server's services.
	Build func(Services) (*Parts, error)
}

// Services are what the server sets up for an app.
type Services struct {
	// Driver is the database; Dialect is dialect.SQLite or dialect.Postgres.
	Driver  dialect.Driver
	Dialect string
	// Store is the client of Kiln's own tables.
	Store *store.Client
	// Events is the pub/sub of subscriptions.
	Events realtime.Events
	// Files is the file runtime; Build sets its Schema.
	Files *files.Service
	// Accounts is the account and session service.
	Accounts accounts.Service
	// Queue is the job engine the app's triggers enqueue events on.
	Queue job.Queue
	// Jobs is the job engine as the admin API sees it.
	Jobs job.Admin
}

// Parts are what an app is made of, built on the services.
type Parts struct {
	// Schema is the executable GraphQL schema.
	Schema graphql.ExecutableSchema
	// Tx runs each mutation operation in one transaction of the app's
	// database client.
	Tx entgql.Transactioner
	// Operations are the registered operations (sha256 of the text -> the
	// text), accepted in allow-list mode.
	Operations map[string]string
	// RealtimeViewerFree lists the viewer-independent fields of each
	// subscription (realtime.ViewerIndependent).
	RealtimeViewerFree map[string]map[string]bool
	// DeleteOwned deletes (or anonymises) what a user owns, through exec,
	// the transaction that deletes their account.
	DeleteOwned func(ctx context.Context, exec entsql.ExecQuerier, userID uuid.UUID, anonymize bool) error
	// Error turns errors of the app's generated layers (ent's) into
	// apierror errors; it returns err itself when it knows none.
	Error func(err error) error
	// Triggers are the targets of the app's event triggers, and Periodic
	// its periodic jobs, which the server's job engine runs.
	Triggers []job.Trigger
	Periodic []job.Periodic
	// PushRecipients keeps, of userIDs, those who get push notifications
	// (the app's opt-out); nil for everyone.
	PushRecipients func(ctx context.Context, userIDs []uuid.UUID) ([]uuid.UUID, error)
}
