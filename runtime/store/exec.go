package store

import entsql "entgo.io/ent/dialect/sql"

// ExecDriver returns an ent driver that runs every statement through exec:
// for example a store transaction's client, so that an app's generated ent
// client built on it works inside that transaction. The driver cannot begin
// transactions of its own.
func ExecDriver(dialect string, exec entsql.ExecQuerier) *entsql.Driver {
	return entsql.NewDriver(dialect, entsql.Conn{ExecQuerier: exec})
}
