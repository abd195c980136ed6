package aescbc

// WithPortable forces the standard-library path, so tests can run both paths side by side.
var WithPortable = withPortable

// FastPathAvailable reports whether this build and CPU use the AES-NI kernel.
func FastPathAvailable() bool { return newFastCBC(make([]byte, 32), make([]byte, blockSize)) != nil }
