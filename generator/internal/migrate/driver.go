package migrate

import (
	"context"
	"crypto/md5"
	stdsql "database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"
)

// offlineDriver is a dialect.Driver without a database. ent's schema
// converter only queries the server while initialising its dialect:
//
//   - PostgreSQL: "SHOW server_version_num" (answered with 150000, i.e.
//     PostgreSQL 15, which enables INCLUDE index columns like any modern
//     server);
//   - SQLite: "PRAGMA foreign_keys" (answered with 1: foreign keys on).
//
// Any other statement is an error, so a change in ent that needs more
// than this is noticed instead of silently producing a wrong schema.
type offlineDriver struct {
	dialect string
}

var _ dialect.Driver = (*offlineDriver)(nil)

// offlineAnswers maps the queries ent issues to their single-value result.
var offlineAnswers = map[string]string{
	"SHOW server_version_num": "150000",
	"PRAGMA foreign_keys":     "1",
}

func (d *offlineDriver) Exec(_ context.Context, query string, _, _ any) error {
	return fmt.Errorf("offline %s driver: unexpected statement %q", d.dialect, query)
}

func (d *offlineDriver) Query(_ context.Context, query string, _, v any) error {
	ans, ok := offlineAnswers[strings.TrimSpace(query)]
	if !ok {
		return fmt.Errorf("offline %s driver: unexpected query %q", d.dialect, query)
	}
	rows, ok := v.(*sql.Rows)
	if !ok {
		return fmt.Errorf("offline %s driver: unexpected rows type %T", d.dialect, v)
	}
	*rows = sql.Rows{ColumnScanner: &valueRows{value: ans}}
	return nil
}

func (d *offlineDriver) Tx(context.Context) (dialect.Tx, error) {
	return nil, fmt.Errorf("offline %s driver: transactions are not supported", d.dialect)
}

func (d *offlineDriver) Close() error { return nil }

func (d *offlineDriver) Dialect() string { return d.dialect }

// valueRows is a result set with one row holding one value.
type valueRows struct {
	value string
	pos   int // 0: before the row, 1: on the row, 2: after it.
}

func (r *valueRows) Close() error                               { return nil }
func (r *valueRows) ColumnTypes() ([]*stdsql.ColumnType, error) { return nil, nil }
func (r *valueRows) Columns() ([]string, error)                 { return []string{"value"}, nil }
func (r *valueRows) Err() error                                 { return nil }
func (r *valueRows) NextResultSet() bool                        { return false }

func (r *valueRows) Next() bool {
	if r.pos < 2 {
		r.pos++
	}
	return r.pos == 1
}

func (r *valueRows) Scan(dest ...any) error {
	if r.pos != 1 {
		return errors.New("offline driver: scan outside of a row")
	}
	if len(dest) != 1 {
		return fmt.Errorf("offline driver: scan into %d values, want 1", len(dest))
	}
	switch p := dest[0].(type) {
	case *string:
		*p = r.value
	case *int64:
		n, err := strconv.ParseInt(r.value, 10, 64)
		if err != nil {
			return err
		}
		*p = n
	case *int:
		n, err := strconv.Atoi(r.value)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		*p = r.value != "" && r.value != "0"
	case *any:
		*p = r.value
	case stdsql.Scanner:
		return p.Scan(r.value)
	default:
		return fmt.Errorf("offline driver: cannot scan into %T", dest[0])
	}
	return nil
}

// md5Sum is used by symbol, mirroring ent's identifier hashing.
func md5Sum(s string) [md5.Size]byte { return md5.Sum([]byte(s)) }
