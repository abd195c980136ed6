// Package inventory keeps the state of a tenant's exported metadata, pass by pass, in SQL: SQLite
// (embedded, pure Go, modernc.org/sqlite) or PostgreSQL (github.com/jackc/pgx/v5), through the
// same code; dialect.go holds every difference. docs/inventory.md describes the schema.
//
// A pass is one export of a scope of a tenant (BeginPass, Ingest record batches, End). Every
// write is an upsert keyed by the object's identity, (tenant, object_type, object_id), through a
// 64-bit hash of it (objectKey; two objects on one key fail the batch: KeyCollisionError), so a
// redelivered batch or a second pass over the same state writes the same rows. An object row
// holds the latest state and, in prev_ columns, the state before the pass that last wrote it: the
// first write of a new pass moves the values to prev_, a second write in the same pass (a
// redelivery) leaves prev_ alone. End then marks deleted what a complete full pass did not see,
// re-derives unique permissions from the pass's role assignments, and stores the pass's change
// set against the previous pass of its tenant and scope (Changes reads it).
//
// Readers: Passes, PassByID, Objects (the latest state, with the author's and editor's logins)
// and Changes. Passes of different tenants are never compared (TenantMismatchError).
package inventory
