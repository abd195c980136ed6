// Package architecture holds no code: its test checks the import rules of docs/ARCHITECTURE.md
// (which group of packages may import which) over every package of the module, so that a layer
// violation fails the build instead of waiting for a review.
package architecture
