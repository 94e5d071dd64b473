package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"kiln/ent"
	"kiln/ent/authuser"
	"kiln/ent/profile"
)

// TestPurgeIdleAnonymous: the nightly job deletes the anonymous accounts
// idle since the cutoff, with their records, and keeps the others.
func TestPurgeIdleAnonymous(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "kiln.db")+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	client := ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db)))
	if err := client.Schema.Create(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := now.Add(-40 * 24 * time.Hour)
	cutoff := now.Add(-30 * 24 * time.Hour)
	user := func(anonymous bool, updated time.Time, sessionAt *time.Time) uuid.UUID {
		u := client.AuthUser.Create().SetAnonymous(anonymous).SetCreatedAt(old).SetUpdatedAt(updated).SaveX(ctx)
		if sessionAt != nil {
			client.AuthSession.Create().SetUserID(u.ID).SetFamilyID(uuid.New()).SetTokenHash(uuid.NewString()).
				SetCreatedAt(*sessionAt).SetExpiresAt(sessionAt.Add(time.Hour)).ExecX(ctx)
		}
		client.Profile.Create().SetOwnerID(u.ID.String()).SetHandle("u" + u.ID.String()[:8]).SetDisplayName("U").ExecX(ctx)
		return u.ID
	}
	idle := user(true, old, &old)
	idleNoSession := user(true, old, nil)
	recentSession := user(true, old, &now)
	recentChange := user(true, now, nil)
	named := user(false, old, &old)

	n, err := PurgeIdleAnonymous(ctx, client, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("purged %d accounts, want 2", n)
	}
	for id, want := range map[uuid.UUID]bool{idle: false, idleNoSession: false, recentSession: true, recentChange: true, named: true} {
		exists := client.AuthUser.Query().Where(authuser.ID(id)).ExistX(ctx)
		profiles := client.Profile.Query().Where(profile.OwnerID(id.String())).CountX(ctx)
		if exists != want || (profiles == 1) != want {
			t.Errorf("account %s: exists %v with %d profiles, want exists %v", id, exists, profiles, want)
		}
	}
}
