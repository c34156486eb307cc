// Package pgmigrate owns `hangar pg migrate`: it copies a PostgreSQL
// database from a consistent snapshot of the source to a target (pg_dump
// and pg_restore in directory format, in parallel), or keeps the target in
// sync with logical replication and cuts over, and then proves the result:
// table and column inventory, extensions, exact row counts, an
// order-independent checksum of every row computed the same way on both
// sides, and sequences that are ahead of the columns they feed.
//
// Every string this package prints or returns goes through a redactor, so
// passwords in connection URLs never reach the terminal.
package pgmigrate
