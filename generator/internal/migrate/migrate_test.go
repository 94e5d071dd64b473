package migrate

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ariga.io/atlas/sql/postgres"
	atlas "ariga.io/atlas/sql/schema"
	"entgo.io/ent/dialect/entsql"
	entschema "entgo.io/ent/dialect/sql/schema"
	"entgo.io/ent/schema/field"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"
)

// schemaOpts selects variations of the test schema.
type schemaOpts struct {
	nickname  bool // users.nickname: nullable string.
	noBio     bool // drop profiles.bio.
	locale    bool // users.locale: NOT NULL string with default (SQLite rebuilds users).
	shortName bool // narrow users.name from varchar(100) to varchar(50).
	rank      bool // users.rank: NOT NULL int without a default.
	// users.age becomes NOT NULL: without a default (ageRequired), with
	// the default 18 (ageDefault).
	ageRequired, ageDefault bool
}

// testTables builds ent tables the way gen.Graph.Tables() does: fresh values
// on every call.
func testTables(o schemaOpts) []*entschema.Table {
	// users
	usersID := &entschema.Column{Name: "id", Type: field.TypeUUID}
	usersCols := []*entschema.Column{
		{Name: "email", Type: field.TypeString, Unique: true},
		{Name: "name", Type: field.TypeString, Size: 100, SchemaType: map[string]string{"postgres": "varchar(100)"}},
		{Name: "age", Type: field.TypeInt, Nullable: true},
		{Name: "score", Type: field.TypeFloat64, Default: 0.5},
		{Name: "active", Type: field.TypeBool, Default: true},
		{Name: "role", Type: field.TypeEnum, Enums: []string{"admin", "member"}, Default: "member"},
		{Name: "settings", Type: field.TypeJSON, Nullable: true},
		{Name: "created_at", Type: field.TypeTime},
	}
	if o.ageRequired || o.ageDefault {
		usersCols[2].Nullable = false
		if o.ageDefault {
			usersCols[2].Default = 18
		}
	}
	if o.shortName {
		usersCols[1].Size = 50
		usersCols[1].SchemaType = map[string]string{"postgres": "varchar(50)"}
	}
	if o.nickname {
		usersCols = append(usersCols, &entschema.Column{Name: "nickname", Type: field.TypeString, Nullable: true})
	}
	if o.rank {
		usersCols = append(usersCols, &entschema.Column{Name: "rank", Type: field.TypeInt})
	}
	if o.locale {
		usersCols = append(usersCols, &entschema.Column{Name: "locale", Type: field.TypeString, Default: "en"})
	}
	users := entschema.NewTable("users").AddPrimary(usersID)
	for _, c := range usersCols {
		users.AddColumn(c)
	}
	users.AddIndex("user_name_age", false, []string{"name", "age"})

	// posts: int PK, FK to users with ON DELETE CASCADE, an index and a
	// composite unique index.
	postsID := &entschema.Column{Name: "id", Type: field.TypeInt, Increment: true}
	postsTitle := &entschema.Column{Name: "title", Type: field.TypeString}
	postsBody := &entschema.Column{Name: "body", Type: field.TypeString, Size: 2147483647, Default: "it's -- empty; really"}
	postsPublished := &entschema.Column{Name: "published_at", Type: field.TypeTime, Nullable: true}
	postsUser := &entschema.Column{Name: "user_posts", Type: field.TypeUUID}
	posts := entschema.NewTable("posts").AddPrimary(postsID).
		AddColumn(postsTitle).AddColumn(postsBody).AddColumn(postsPublished).AddColumn(postsUser)
	posts.AddForeignKey(&entschema.ForeignKey{
		Symbol:     "posts_users_posts",
		Columns:    []*entschema.Column{postsUser},
		RefTable:   users,
		RefColumns: []*entschema.Column{usersID},
		OnDelete:   entschema.Cascade,
	})
	posts.AddIndex("post_published_at", false, []string{"published_at"})
	posts.AddIndex("post_user_posts_title", true, []string{"user_posts", "title"})

	// profiles: one-to-one with users (unique FK column).
	profilesID := &entschema.Column{Name: "id", Type: field.TypeInt, Increment: true}
	profilesUser := &entschema.Column{Name: "user_profile", Type: field.TypeUUID, Unique: true, Nullable: true}
	profiles := entschema.NewTable("profiles").AddPrimary(profilesID)
	if !o.noBio {
		profiles.AddColumn(&entschema.Column{Name: "bio", Type: field.TypeString, Nullable: true})
	}
	profiles.AddColumn(profilesUser)
	profiles.AddForeignKey(&entschema.ForeignKey{
		Symbol:     "profiles_users_profile",
		Columns:    []*entschema.Column{profilesUser},
		RefTable:   users,
		RefColumns: []*entschema.Column{usersID},
		OnDelete:   entschema.SetNull,
	})

	// groups and the users<->groups join table.
	groupsID := &entschema.Column{Name: "id", Type: field.TypeInt, Increment: true}
	groups := entschema.NewTable("groups").AddPrimary(groupsID).
		AddColumn(&entschema.Column{Name: "name", Type: field.TypeString, Unique: true})
	ugGroup := &entschema.Column{Name: "group_id", Type: field.TypeInt}
	ugUser := &entschema.Column{Name: "user_id", Type: field.TypeUUID}
	userGroups := entschema.NewTable("group_users").AddPrimary(ugGroup).AddPrimary(ugUser)
	userGroups.AddForeignKey(&entschema.ForeignKey{
		Symbol:     "group_users_group_id",
		Columns:    []*entschema.Column{ugGroup},
		RefTable:   groups,
		RefColumns: []*entschema.Column{groupsID},
		OnDelete:   entschema.Cascade,
	})
	userGroups.AddForeignKey(&entschema.ForeignKey{
		Symbol:     "group_users_user_id",
		Columns:    []*entschema.Column{ugUser},
		RefTable:   users,
		RefColumns: []*entschema.Column{usersID},
		OnDelete:   entschema.Cascade,
	})
	return []*entschema.Table{groups, users, posts, profiles, userGroups}
}

var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))

func plan(t *testing.T, dir, name string, o schemaOpts, allow bool) ([]Result, error) {
	t.Helper()
	return Plan(context.Background(), Config{
		Dir:              dir,
		Tables:           testTables(o),
		Name:             name,
		Now:              func() time.Time { return fixedNow },
		AllowDestructive: allow,
	})
}

func mustPlan(t *testing.T, dir, name string, o schemaOpts, allow bool) []Result {
	t.Helper()
	res, err := plan(t, dir, name, o, allow)
	if err != nil {
		t.Fatalf("Plan(%s): %v", name, err)
	}
	if len(res) != 2 || res[0].Dialect != "sqlite" || res[1].Dialect != "postgres" {
		t.Fatalf("Plan(%s): unexpected results %+v", name, res)
	}
	return res
}

// snapshotDir returns all files below dir with their contents.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// migrator applies the generated migrations of one dialect to a database.
type migrator struct {
	dialect string
	gd      goose.Dialect
	db      *sql.DB
}

func (m *migrator) up(t *testing.T, dir string) {
	t.Helper()
	p, err := goose.NewProvider(m.gd, m.db, os.DirFS(filepath.Join(dir, m.dialect)))
	if err != nil {
		t.Fatalf("%s: goose provider: %v", m.dialect, err)
	}
	if _, err := p.Up(context.Background()); err != nil {
		t.Fatalf("%s: goose up: %v", m.dialect, err)
	}
}

func (m *migrator) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := m.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %s: %v", m.dialect, query, err)
	}
}

func (m *migrator) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := m.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("%s: count %s: %v", m.dialect, table, err)
	}
	return n
}

func sqliteMigrator(t *testing.T) *migrator {
	t.Helper()
	// Foreign keys on, like ent requires at run time.
	// The same connection settings as the server (server/internal/database).
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &migrator{dialect: "sqlite", gd: goose.DialectSQLite3, db: db}
}

// postgresMigrator connects to a fresh database on the server in
// KILN_TEST_POSTGRES_URL, dropped at the end of the test.
func postgresMigrator(t *testing.T) *migrator {
	t.Helper()
	base := os.Getenv("KILN_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("KILN_REQUIRE_POSTGRES") == "1" {
			t.Fatal("KILN_REQUIRE_POSTGRES=1 but KILN_TEST_POSTGRES_URL is not set (start a server with: export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start))")
		}
		t.Skip("PostgreSQL part skipped: set KILN_TEST_POSTGRES_URL (start a server with: export KILN_TEST_POSTGRES_URL=$(.ci/pg.sh start))")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "kiln_mig_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Close()
		a, err := sql.Open("pgx", base)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer a.Close()
		if _, err := a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return &migrator{dialect: "postgres", gd: goose.DialectPostgres, db: db}
}

// TestPlanLifecycle walks a schema through its life (create, no-op, add a
// column, drop a column, rebuild a referenced table) and applies every
// generated migration to real databases.
func TestPlanLifecycle(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testLifecycle(t, sqliteMigrator(t)) })
	t.Run("postgres", func(t *testing.T) { testLifecycle(t, postgresMigrator(t)) })
}

func testLifecycle(t *testing.T, m *migrator) {
	dir := t.TempDir()
	d := filepath.Join(dir, m.dialect)

	// 1. First run: one migration per dialect plus the snapshots.
	res := mustPlan(t, dir, "init", schemaOpts{}, false)
	for _, r := range res {
		if r.File != "20250304040607_init.sql" || r.Changes == 0 {
			t.Fatalf("init: unexpected result %+v", r)
		}
		sqlText := readFile(t, filepath.Join(dir, r.Dialect, r.File))
		if !strings.HasPrefix(sqlText, "-- Code generated by kiln. DO NOT EDIT.\n-- +goose Up\n") {
			t.Fatalf("%s: bad header:\n%s", r.Dialect, sqlText)
		}
		if !strings.Contains(sqlText, "CREATE TABLE "+quote(r.Dialect, "users")) || !strings.Contains(sqlText, "ON DELETE CASCADE") {
			t.Fatalf("%s: missing statements:\n%s", r.Dialect, sqlText)
		}
		if strings.Contains(sqlText, "NO TRANSACTION") {
			t.Fatalf("%s: initial migration should be transactional:\n%s", r.Dialect, sqlText)
		}
		hcl := readFile(t, filepath.Join(dir, r.Dialect, "schema.hcl"))
		if !strings.HasPrefix(hcl, "# Code generated by kiln. DO NOT EDIT.\n") {
			t.Fatalf("%s: bad snapshot header:\n%s", r.Dialect, hcl)
		}
	}
	t.Logf("%s init:\n%s", m.dialect, readFile(t, filepath.Join(d, "20250304040607_init.sql")))
	m.up(t, dir)
	const uid = "7f1c9a44-6d7e-4d3a-9d4e-0a1b2c3d4e5f"
	m.exec(t, `INSERT INTO users (id, email, name, age, created_at) VALUES ($1, 'a@example.com', 'Ann', 30, CURRENT_TIMESTAMP)`, uid)
	m.exec(t, `INSERT INTO posts (title, user_posts) VALUES ('hello', $1)`, uid)
	m.exec(t, `INSERT INTO profiles (bio, user_profile) VALUES ('about me', $1)`, uid)
	m.exec(t, `INSERT INTO groups (name) VALUES ('g')`)
	m.exec(t, `INSERT INTO group_users (group_id, user_id) SELECT id, $1 FROM groups`, uid)
	var body string
	if err := m.db.QueryRow(`SELECT body FROM posts`).Scan(&body); err != nil || body != "it's -- empty; really" {
		t.Fatalf("default body = %q, %v", body, err)
	}

	// 2. Second run with the same tables: nothing changes, nothing is written.
	before := snapshotDir(t, dir)
	res = mustPlan(t, dir, "again", schemaOpts{}, false)
	for _, r := range res {
		if r.File != "" || r.Changes != 0 {
			t.Fatalf("again: unexpected result %+v", r)
		}
	}
	if after := snapshotDir(t, dir); !mapsEqual(before, after) {
		t.Fatalf("again: files changed")
	}

	// 3. A new nullable column is a plain ALTER TABLE ... ADD COLUMN. The
	// version is bumped past the existing migration (same Now).
	res = mustPlan(t, dir, "nickname", schemaOpts{nickname: true}, false)
	for _, r := range res {
		if r.File != "20250304040608_nickname.sql" || r.Changes != 1 {
			t.Fatalf("nickname: unexpected result %+v", r)
		}
		sqlText := readFile(t, filepath.Join(dir, r.Dialect, r.File))
		if !strings.Contains(sqlText, "ALTER TABLE "+quote(r.Dialect, "users")+" ADD COLUMN "+quote(r.Dialect, "nickname")) {
			t.Fatalf("%s: no ADD COLUMN:\n%s", r.Dialect, sqlText)
		}
	}
	m.up(t, dir)
	m.exec(t, `UPDATE users SET nickname = 'annie'`)

	// 4. Dropping a column is refused without AllowDestructive, and nothing
	// at all is written.
	before = snapshotDir(t, dir)
	_, err := plan(t, dir, "drop_bio", schemaOpts{nickname: true, noBio: true}, false)
	if err == nil {
		t.Fatal("drop_bio: expected an error")
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		want := filepath.Join(dir, dialect) + `: refusing a change that would lose data: drop column "bio" of table "profiles" (run with -allow-destructive to allow it)`
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("drop_bio: error\n%v\ndoes not contain\n%s", err, want)
		}
	}
	if after := snapshotDir(t, dir); !mapsEqual(before, after) {
		t.Fatalf("drop_bio: files were written although the change was refused")
	}
	res = mustPlan(t, dir, "drop_bio", schemaOpts{nickname: true, noBio: true}, true)
	for _, r := range res {
		if r.File != "20250304040609_drop_bio.sql" || r.Changes != 1 {
			t.Fatalf("drop_bio: unexpected result %+v", r)
		}
	}
	t.Logf("%s drop_bio:\n%s", m.dialect, readFile(t, filepath.Join(d, "20250304040609_drop_bio.sql")))
	m.up(t, dir)
	if n := m.count(t, "profiles"); n != 1 {
		t.Fatalf("profiles rows after dropping bio: %d, want 1", n)
	}

	// 5. A NOT NULL column with a default on a table other tables reference
	// with ON DELETE CASCADE: SQLite rebuilds "users", which must neither
	// lose its rows nor cascade into posts and group_users.
	res = mustPlan(t, dir, "locale", schemaOpts{nickname: true, noBio: true, locale: true}, false)
	sqlText := readFile(t, filepath.Join(d, res[0].File))
	if m.dialect == "sqlite" {
		sqlText = readFile(t, filepath.Join(d, res[0].File))
		if !strings.Contains(sqlText, "-- +goose NO TRANSACTION\n") || !strings.Contains(sqlText, "PRAGMA foreign_keys = off;\n") {
			t.Fatalf("sqlite rebuild should run outside goose's transaction:\n%s", sqlText)
		}
	}
	t.Logf("%s locale:\n%s", m.dialect, sqlText)
	m.up(t, dir)
	for table, want := range map[string]int{"users": 1, "posts": 1, "profiles": 1, "group_users": 1} {
		if n := m.count(t, table); n != want {
			t.Fatalf("%s rows after rebuilding users: %d, want %d", table, n, want)
		}
	}
	var nick, locale string
	if err := m.db.QueryRow(`SELECT nickname, locale FROM users`).Scan(&nick, &locale); err != nil || nick != "annie" || locale != "en" {
		t.Fatalf("users after rebuild: %q %q %v", nick, locale, err)
	}
	if m.dialect == "sqlite" {
		var fk int
		if err := m.db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		rows, err := m.db.Query(`PRAGMA foreign_key_check`)
		if err != nil {
			t.Fatal(err)
		}
		if rows.Next() {
			t.Fatal("foreign key violations after rebuild")
		}
		rows.Close()
	}
	// Cascades still work after the rebuild.
	m.exec(t, `DELETE FROM users`)
	for table, want := range map[string]int{"posts": 0, "group_users": 0, "profiles": 1} {
		if n := m.count(t, table); n != want {
			t.Fatalf("%s rows after deleting users: %d, want %d", table, n, want)
		}
	}

	// Still idempotent at the end.
	res = mustPlan(t, dir, "noop", schemaOpts{nickname: true, noBio: true, locale: true}, false)
	for _, r := range res {
		if r.File != "" {
			t.Fatalf("noop: unexpected result %+v", r)
		}
	}
}

// TestPlanDeterministic runs the same sequence in two directories and
// compares every byte.
func TestPlanDeterministic(t *testing.T) {
	steps := []schemaOpts{{}, {nickname: true}, {nickname: true, noBio: true}, {nickname: true, noBio: true, locale: true}}
	var outputs []map[string]string
	for range 3 {
		dir := t.TempDir()
		for i, o := range steps {
			mustPlan(t, dir, "step"+string(rune('a'+i)), o, true)
		}
		outputs = append(outputs, snapshotDir(t, dir))
	}
	for i := 1; i < len(outputs); i++ {
		if !mapsEqual(outputs[0], outputs[i]) {
			for k, v := range outputs[0] {
				if outputs[i][k] != v {
					t.Errorf("%s differs:\n%s\n----\n%s", k, v, outputs[i][k])
				}
			}
			t.Fatal("output is not deterministic")
		}
	}
	if len(outputs[0]) != 2*(len(steps)+1) {
		t.Fatalf("unexpected files: %v", keys(outputs[0]))
	}
}

// TestPlanRefusesNarrowing checks type changes that can lose data.
func TestPlanRefusesNarrowing(t *testing.T) {
	dir := t.TempDir()
	mustPlan(t, dir, "init", schemaOpts{}, false)
	before := snapshotDir(t, dir)
	_, err := plan(t, dir, "short_name", schemaOpts{shortName: true}, false)
	if err == nil {
		t.Fatal("expected narrowing varchar(100) -> varchar(50) to be refused")
	}
	want := filepath.Join(dir, "postgres") + `: refusing a change that would lose data: change type of column "name" of table "users" from character varying(100) to character varying(50)`
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error\n%v\ndoes not contain\n%s", err, want)
	}
	if after := snapshotDir(t, dir); !mapsEqual(before, after) {
		t.Fatal("files were written although the change was refused")
	}
	// Dropping a whole table is refused too.
	_, err = Plan(context.Background(), Config{Dir: dir, Tables: testTables(schemaOpts{})[:4], Name: "drop_join", Now: time.Now})
	if err == nil || !strings.Contains(err.Error(), `drop table "group_users"`) {
		t.Fatalf("drop table: unexpected error %v", err)
	}
}

// TestPlanRefusesRequiredColumn: a NOT NULL column without a default added
// to an existing table is refused on both dialects, with or without
// AllowDestructive (a table holding rows cannot take it), and nothing is
// written; the same column in a new table, or with a default, is planned.
func TestPlanRefusesRequiredColumn(t *testing.T) {
	dir := t.TempDir()
	mustPlan(t, dir, "init", schemaOpts{}, false)
	before := snapshotDir(t, dir)
	for _, allow := range []bool{false, true} {
		_, err := plan(t, dir, "rank", schemaOpts{rank: true}, allow)
		for _, d := range []string{"sqlite", "postgres"} {
			want := filepath.Join(dir, d) + `: refusing a change that fails on a table holding rows: add required column "rank" without a default to table "users": ` +
				`its existing rows would have no value for it (give the field a @default(value: ...), which existing rows get, or make it nullable: drop the !)`
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("allow=%v: error\n%v\ndoes not contain\n%s", allow, err, want)
			}
		}
		if after := snapshotDir(t, dir); !mapsEqual(before, after) {
			t.Fatal("files were written although the change was refused")
		}
	}
	// A new table may have required columns without defaults.
	if _, err := plan(t, t.TempDir(), "init", schemaOpts{rank: true}, false); err != nil {
		t.Fatalf("a required column of a new table: %v", err)
	}
}

// TestPlanRequiringNullable: making a nullable column required is refused
// without a default (rows holding NULL would fail the migration); with a
// default the migration first sets the rows holding NULL to it, and applies
// to databases holding such rows.
func TestPlanRequiringNullable(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRequiringNullable(t, sqliteMigrator(t)) })
	t.Run("postgres", func(t *testing.T) { testRequiringNullable(t, postgresMigrator(t)) })
}

func testRequiringNullable(t *testing.T, m *migrator) {
	dir := t.TempDir()
	mustPlan(t, dir, "init", schemaOpts{}, false)
	m.up(t, dir)
	m.exec(t, `INSERT INTO users (id, email, name, age, created_at) VALUES ('7f1c9a44-6d7e-4d3a-9d4e-0a1b2c3d4e5f', 'a@example.com', 'Ann', 30, CURRENT_TIMESTAMP)`)
	m.exec(t, `INSERT INTO users (id, email, name, created_at) VALUES ('7f1c9a44-6d7e-4d3a-9d4e-0a1b2c3d4e60', 'b@example.com', 'Bob', CURRENT_TIMESTAMP)`)

	before := snapshotDir(t, dir)
	for _, allow := range []bool{false, true} {
		_, err := plan(t, dir, "age", schemaOpts{ageRequired: true}, allow)
		want := filepath.Join(dir, m.dialect) + `: refusing a change that fails on a table holding rows: make column "age" of table "users" required without a default: ` +
			`its rows holding NULL would fail (give the field a @default(value: ...), which those rows get, or keep it nullable)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("allow=%v: error\n%v\ndoes not contain\n%s", allow, err, want)
		}
		if after := snapshotDir(t, dir); !mapsEqual(before, after) {
			t.Fatal("files were written although the change was refused")
		}
	}

	res := mustPlan(t, dir, "age", schemaOpts{ageDefault: true}, false)
	for _, r := range res {
		if r.File == "" {
			t.Fatalf("age: nothing planned for %s", r.Dialect)
		}
	}
	t.Logf("%s age:\n%s", m.dialect, readFile(t, filepath.Join(dir, m.dialect, res[0].File)))
	m.up(t, dir)
	rows, err := m.db.Query(`SELECT email, age FROM users ORDER BY email`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var email string
		var age int
		if err := rows.Scan(&email, &age); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s=%d", email, age))
	}
	if strings.Join(got, " ") != "a@example.com=30 b@example.com=18" {
		t.Fatalf("users after making age required: %v", got)
	}
	if _, err := m.db.Exec(`INSERT INTO users (id, email, name, age, created_at) VALUES ('7f1c9a44-6d7e-4d3a-9d4e-0a1b2c3d4e61', 'c@example.com', 'Cy', NULL, CURRENT_TIMESTAMP)`); err == nil {
		t.Fatal("age is still nullable")
	}
}

func TestLossyType(t *testing.T) {
	pg := func(s string) *schemaTypeCase { return &schemaTypeCase{dialect: "postgres", raw: s} }
	for _, c := range []struct {
		from, to *schemaTypeCase
		lossy    bool
	}{
		{pg("character varying(100)"), pg("character varying(200)"), false},
		{pg("character varying(100)"), pg("text"), false},
		{pg("character varying"), pg("character varying(10)"), true},
		{pg("text"), pg("character varying(10)"), true},
		{pg("integer"), pg("bigint"), false},
		{pg("bigint"), pg("integer"), true},
		{pg("real"), pg("double precision"), false},
		{pg("double precision"), pg("real"), true},
		{pg("bigint"), pg("text"), false},
		{pg("text"), pg("bigint"), true},
		{pg("uuid"), pg("text"), false},
		{pg("uuid"), pg("character varying(20)"), true},
		{pg("jsonb"), pg("text"), false},
		{pg("text"), pg("jsonb"), true},
		{pg("boolean"), pg("bigint"), true},
		{pg("timestamp with time zone"), pg("timestamp(3) with time zone"), true},
		{pg("numeric(10,2)"), pg("numeric(12,2)"), false},
		{pg("numeric(10,2)"), pg("numeric(10,1)"), true},
	} {
		from, to := c.from.parse(t), c.to.parse(t)
		if got := lossyType(from, to); got != c.lossy {
			t.Errorf("lossyType(%s, %s) = %v, want %v", c.from.raw, c.to.raw, got, c.lossy)
		}
	}
}

func TestPlanValidation(t *testing.T) {
	ctx := context.Background()
	if _, err := Plan(ctx, Config{Name: "x"}); err == nil {
		t.Error("missing Dir: expected an error")
	}
	for _, name := range []string{"", "a/b", "a b", "../x"} {
		if _, err := Plan(ctx, Config{Dir: t.TempDir(), Name: name}); err == nil {
			t.Errorf("name %q: expected an error", name)
		}
	}
	// No tables and no snapshot: nothing to do.
	dir := t.TempDir()
	res, err := Plan(ctx, Config{Dir: dir, Name: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].File != "" || res[1].File != "" {
		t.Fatalf("unexpected results %+v", res)
	}
	if files := snapshotDir(t, dir); len(files) != 0 {
		t.Fatalf("unexpected files %v", keys(files))
	}
}

// quote quotes an identifier the way the dialect's Atlas planner does.
func quote(dialect, ident string) string {
	if dialect == "sqlite" {
		return "`" + ident + "`"
	}
	return `"` + ident + `"`
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal([]byte(v), []byte(w)) {
			return false
		}
	}
	return true
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

type schemaTypeCase struct {
	dialect, raw string
}

func (c *schemaTypeCase) parse(t *testing.T) atlas.Type {
	t.Helper()
	typ, err := postgres.ParseType(c.raw)
	if err != nil {
		t.Fatalf("parse %q: %v", c.raw, err)
	}
	return typ
}

// kitchenSink returns a table using most of what ent can express.
func kitchenSink() []*entschema.Table {
	start := 1000
	id := &entschema.Column{Name: "id", Type: field.TypeUint64, Increment: true}
	cols := []*entschema.Column{
		{Name: "i8", Type: field.TypeInt8, Default: -1},
		{Name: "i16", Type: field.TypeInt16, Nullable: true},
		{Name: "i32", Type: field.TypeInt32, Default: 7},
		{Name: "u", Type: field.TypeUint, Default: 0},
		{Name: "f32", Type: field.TypeFloat32, Nullable: true},
		{Name: "price", Type: field.TypeFloat64, SchemaType: map[string]string{"postgres": "numeric(10,2)", "sqlite3": "decimal(10,2)"}, Default: 0},
		{Name: "blob", Type: field.TypeBytes, Nullable: true},
		{Name: "tags", Type: field.TypeJSON, Default: `["a","b"]`},
		{Name: "created", Type: field.TypeTime, Default: entschema.Expr("CURRENT_TIMESTAMP")},
		{Name: "day", Type: field.TypeTime, SchemaType: map[string]string{"postgres": "date", "sqlite3": "date"}, Nullable: true},
		{Name: "ts3", Type: field.TypeTime, SchemaType: map[string]string{"postgres": "timestamp(3) without time zone"}, Nullable: true},
		{Name: "code", Type: field.TypeString, Size: 20, SchemaType: map[string]string{"postgres": "char(20)"}, Nullable: true, Comment: "fixed code"},
		{Name: "long_text", Type: field.TypeString, Size: 20 << 20, Default: ""},
		{Name: "status", Type: field.TypeEnum, Enums: []string{"a", "b"}, Default: "a"},
		{Name: "ext", Type: field.TypeUUID, Unique: true, Nullable: true},
		{Name: "lower_name", Type: field.TypeString, Default: entschema.Expr("lower('X')")},
		{Name: "per_dialect", Type: field.TypeString, Default: map[string]entschema.Expr{"postgres": "'pg'", "sqlite3": "'lite'"}},
	}
	t := entschema.NewTable("kitchen_sinks").AddPrimary(id).SetComment("everything")
	for _, c := range cols {
		t.AddColumn(c)
	}
	t.SetAnnotation(&entsql.Annotation{IncrementStart: &start, Checks: map[string]string{"i8_positive": "i8 > -100"}})
	t.AddIndex("kitchen_sink_status_created", false, []string{"status", "created"})
	t.Indexes[0].Annotation = &entsql.IndexAnnotation{DescColumns: map[string]bool{"created": true}}
	t.AddIndex("kitchen_sink_a_really_long_index_name_that_goes_past_sixty_three_chars", true, []string{"i32", "u"})
	t.Indexes[1].Annotation = &entsql.IndexAnnotation{Where: "i32 > 0"}
	t.AddIndex("kitchen_sink_tags", false, []string{"tags"})
	t.Indexes[2].Annotation = &entsql.IndexAnnotation{Types: map[string]string{"postgres": "GIN"}}
	return []*entschema.Table{t}
}

// TestSnapshotFidelity checks that the HCL round-trip used for snapshots is
// invisible to the differ: the round-tripped schema diffs empty against the
// one ent produced (so Plan never needs its fallback for these tables).
func TestSnapshotFidelity(t *testing.T) {
	ctx := context.Background()
	for _, tables := range [][]*entschema.Table{
		testTables(schemaOpts{}),
		testTables(schemaOpts{nickname: true, noBio: true, locale: true}),
		kitchenSink(),
	} {
		for _, spec := range dialects {
			desired, err := desiredSchema(ctx, spec, tables)
			if err != nil {
				t.Fatal(err)
			}
			hcl, err := spec.marshal(desired)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := evalSnapshot(spec, hcl)
			if err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2]*atlas.Schema{{rt, desired}, {desired, rt}} {
				changes, err := spec.differ.SchemaDiff(pair[0], pair[1])
				if err != nil {
					t.Fatal(err)
				}
				if len(changes) != 0 {
					t.Errorf("%s: round-trip changes: %v", spec.name, describeAll(changes))
				}
			}
		}
	}
}

// TestPlanKitchenSink applies a table using most ent features (identity
// start, checks, partial/descending/GIN indexes, comments, per-dialect
// types and defaults), then a change that makes SQLite rebuild it.
func TestPlanKitchenSink(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testKitchenSink(t, sqliteMigrator(t)) })
	t.Run("postgres", func(t *testing.T) { testKitchenSink(t, postgresMigrator(t)) })
}

func testKitchenSink(t *testing.T, m *migrator) {
	ctx := context.Background()
	dir := t.TempDir()
	run := func(name string, tables []*entschema.Table) []Result {
		t.Helper()
		res, err := Plan(ctx, Config{Dir: dir, Tables: tables, Name: name, Now: func() time.Time { return fixedNow }})
		if err != nil {
			t.Fatalf("Plan(%s): %v", name, err)
		}
		return res
	}
	if res := run("init", kitchenSink()); res[0].File == "" || res[1].File == "" {
		t.Fatalf("init: %+v", res)
	}
	m.up(t, dir)
	m.exec(t, `INSERT INTO kitchen_sinks (i8, per_dialect) VALUES (5, 'x')`)
	var id int64
	// PostgreSQL starts the identity at 1000; SQLite stores 1000 as the
	// last used value of the AUTOINCREMENT sequence (ent/Atlas semantics).
	if err := m.db.QueryRow(`SELECT id FROM kitchen_sinks`).Scan(&id); err != nil || id < 1000 || id > 1001 {
		t.Fatalf("first id = %d (%v), want 1000 or 1001 (IncrementStart)", id, err)
	}
	if _, err := m.db.Exec(`INSERT INTO kitchen_sinks (i8) VALUES (-101)`); err == nil {
		t.Fatal("check constraint not enforced")
	}
	if res := run("noop", kitchenSink()); res[0].File != "" || res[1].File != "" {
		t.Fatalf("noop: %+v", res)
	}
	// Change a default: SQLite rebuilds the table.
	tables := kitchenSink()
	c, _ := tables[0].Column("i32")
	c.Default = 8
	res := run("default", tables)
	if res[0].File == "" || res[1].File == "" {
		t.Fatalf("default: %+v", res)
	}
	t.Logf("%s default:\n%s", m.dialect, readFile(t, filepath.Join(dir, m.dialect, res[0].File)))
	m.up(t, dir)
	m.exec(t, `INSERT INTO kitchen_sinks (i8) VALUES (6)`)
	var i32 int
	if err := m.db.QueryRow(`SELECT i32 FROM kitchen_sinks WHERE i8 = 6`).Scan(&i32); err != nil || i32 != 8 {
		t.Fatalf("i32 = %d (%v), want 8", i32, err)
	}
	if n := m.count(t, "kitchen_sinks"); n != 2 {
		t.Fatalf("rows = %d, want 2", n)
	}
	if res := run("noop2", tables); res[0].File != "" || res[1].File != "" {
		t.Fatalf("noop2: %+v", res)
	}
}
