//go:build !otlpgrpc

package svc_test

const grpcBuilt = false
