package testenv

// This file runs an in-process NATS JetStream server (the nats-server module).

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSOptions configures StartNATS.
type NATSOptions struct {
	// StoreDir holds JetStream's file store. Empty: a new temporary directory removed by Close.
	StoreDir string
	// Port is the client port on 127.0.0.1; 0 picks a free one.
	Port int
	// ServerName names the server (it matters in clusters); empty means a generated name.
	ServerName string
	// NoJetStream starts a server without JetStream (a misconfigured deployment).
	NoJetStream bool
}

// NATSServer is a running embedded NATS server, with JetStream unless NoJetStream.
type NATSServer struct {
	*server.Server
	storeDir string
	ownDir   bool
}

// StartNATS starts the server and waits until it accepts clients.
func StartNATS(opts NATSOptions) (*NATSServer, error) {
	s := &NATSServer{storeDir: opts.StoreDir}
	if s.storeDir == "" {
		dir, err := os.MkdirTemp("", "jetstream-")
		if err != nil {
			return nil, fmt.Errorf("jetstream store dir: %w", err)
		}
		s.storeDir, s.ownDir = dir, true
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: opts.ServerName,
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  !opts.NoJetStream,
		StoreDir:   s.storeDir,
		NoLog:      true,
		NoSigs:     true,
		// JetStream reserves every stream's size limit against this budget (an accounting, not
		// disk taken); the default, 75% of the free disk, would refuse the topology on a small disk.
		JetStreamMaxStore:  ServerStoreLimit,
		JetStreamMaxMemory: ServerMemoryLimit,
	})
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("new nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		s.removeDir()
		return nil, fmt.Errorf("nats server not ready after 10s")
	}
	s.Server = ns
	return s, nil
}

// Close shuts the server down and removes a temporary store directory.
func (s *NATSServer) Close() error {
	s.Shutdown()
	s.WaitForShutdown()
	return s.removeDir()
}

func (s *NATSServer) removeDir() error {
	if !s.ownDir {
		return nil
	}
	if err := os.RemoveAll(s.storeDir); err != nil {
		return fmt.Errorf("remove jetstream store: %w", err)
	}
	return nil
}
