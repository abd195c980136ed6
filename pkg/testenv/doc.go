// Package testenv is the one place the tests and `amrctl dev` get an environment from: an
// embedded NATS JetStream server (alone, or with the pipeline's topology and a connection:
// JetStream), Azurite as a child process, and a World with the SharePoint simulator writing into
// Azurite, AMR jobs created as the submitter creates them, and stage runtimes on their own
// connections, as replicas would have. Production talks to a real NATS cluster and to Azure.
package testenv
