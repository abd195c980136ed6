//go:build otlpgrpc

package svc_test

const grpcBuilt = true
