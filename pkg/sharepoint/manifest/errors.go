package manifest

import (
	"errors"
	"fmt"
)

// Error classes carried by SyntaxError.Err, for errors.Is.
var (
	// ErrUnknownRoot: the root element is not one of the package files.
	ErrUnknownRoot = errors.New("unknown package file root element")
	// ErrDTD: the input holds a DOCTYPE, ENTITY or other markup declaration.
	ErrDTD = errors.New("markup declarations (DTD) are not allowed")
	// ErrLimit: a size or depth bound of Options was exceeded.
	ErrLimit = errors.New("limit exceeded")
	// ErrMalformed: the input is not well-formed XML.
	ErrMalformed = errors.New("malformed XML")
	// ErrInvalidValue: an attribute value does not fit its type (time, integer, boolean).
	ErrInvalidValue = errors.New("invalid attribute value")
)

// SyntaxError reports a parse failure at a byte offset of the input.
type SyntaxError struct {
	// Offset is the 0-based byte offset in the input where the problem was found.
	Offset int64
	// Line is the 1-based line of Offset (0 when unknown).
	Line int
	// Msg describes the problem.
	Msg string
	// Err is the error class (ErrMalformed, ErrDTD, ErrLimit, ...).
	Err error
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("manifest: line %d, offset %d: %s", e.Line, e.Offset, e.Msg)
}

// Unwrap returns the error class.
func (e *SyntaxError) Unwrap() error { return e.Err }
