package inventory

import (
	"errors"
	"fmt"
)

// DSNError is a DSN that names no backend this package has.
type DSNError struct {
	DSN    string // with any password hidden
	Reason string
}

func (e *DSNError) Error() string { return fmt.Sprintf("inventory DSN %q: %s", e.DSN, e.Reason) }

// ArgError is a bad argument, named.
type ArgError struct{ Arg, Reason string }

func (e *ArgError) Error() string { return fmt.Sprintf("inventory: argument %s: %s", e.Arg, e.Reason) }

// UnknownPassError is a pass id the inventory does not hold; Arg names the argument that gave
// it, when there was one.
type UnknownPassError struct {
	Arg string
	ID  int64
}

func (e *UnknownPassError) Error() string {
	if e.Arg != "" {
		return fmt.Sprintf("inventory: argument %s: unknown pass %d", e.Arg, e.ID)
	}
	return fmt.Sprintf("inventory: unknown pass %d", e.ID)
}

// TenantMismatchError refuses to compare passes of different tenants.
type TenantMismatchError struct {
	From, To             int64
	FromTenant, ToTenant string
}

func (e *TenantMismatchError) Error() string {
	return fmt.Sprintf("inventory: pass %d is of tenant %q and pass %d of tenant %q: passes of different tenants cannot be compared",
		e.From, e.FromTenant, e.To, e.ToTenant)
}

// ErrPassEnded is returned by Ingest and End on a pass that has ended.
var ErrPassEnded = errors.New("inventory: pass has ended")

// ErrIncompletePass is returned for a change set of a pass that did not end complete: its change
// set would present a partial pass as the tenant's state.
var ErrIncompletePass = errors.New("inventory: pass is incomplete")

// ErrNoPass is returned when a diff has no pass to start from.
var ErrNoPass = errors.New("inventory: no pass")

// KeyCollisionError is two objects of a tenant whose keys (objectKey, a 64-bit hash of the
// identity) are the same: the inventory cannot hold both, and the transaction that met them
// wrote nothing. Its chance is about n²/2⁶⁵ for a tenant of n objects (1 in 37 million at a
// million objects). Ingesting the batch again fails again.
type KeyCollisionError struct {
	Tenant string
	// A and B are the two objects, as "object_type object_id"; B is empty when the object the
	// stored row names could not be read back.
	A, B string
}

func (e *KeyCollisionError) Error() string {
	return fmt.Sprintf("inventory: tenant %q: objects %s and %s have the same 64-bit key: the inventory cannot hold both", e.Tenant, e.A, e.B)
}
