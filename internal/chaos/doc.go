// Package chaos is the chaos suite (docs/chaos.md): it runs amrpipe as a deployment does, the five
// stages, nats-server and the SharePoint simulator each as an OS process beside Azurite, exports a
// plan while it kills stage processes with SIGKILL, restarts nats-server, makes Azure Storage
// answer 503 ServerBusy (a storm to ride out, and blobs that never recover) and forges
// report-queue messages, then checks that every job ended truthfully and that downstream holds
// exactly the ground truth, but for what jobs that ended FAILED (with their reasons) did not
// deliver. `make chaos` runs the full mode; `go test ./internal/chaos` a short subset.
package chaos
