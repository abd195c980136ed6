// Package client is what a migration engine imports to read amrpipe's output:
//
//	go get github.com/amrpipe/amrpipe/pkg/client
//
// amrpipe exports SharePoint metadata through the Asynchronous Metadata Read API and publishes
// it as typed records (amrpipev1.Record, proto/amrpipe/v1/records.proto; the fields, their
// manifest sources and the JSON mapping are in docs/records.md). This package reads them:
//
//   - Client.Consumer binds a declared downstream consumer: a durable JetStream consumer of
//     AMR_RECORDS that the topology created (amrctl topology apply --downstream NAME). Records
//     are kept until it acknowledged them, and a new run resumes where the last one stopped.
//   - Consumer.Run hands each record over once: records are de-duplicated on Key (job id, package
//     file, sequence), and a record batch is acknowledged only after the handler accepted all of
//     its records. A handler error hands the batch back with a back-off; it is never
//     acknowledged.
//   - Client.Summary and Client.Summaries give job summaries (one per job, when it ended),
//     Client.PlanStatus what became of a plan, Client.Issues SharePoint's JobError, JobWarning
//     and JobFatalError events of a job.
//
// Delivery guarantees. Within one process, Run hands a record over at most once and every record
// at least once: a batch delivered again (a lost acknowledgement, a re-parse after the stream's
// duplicate window) is dropped record by record on its Key. When Run's context ends it finishes
// the batch in hand, so a stop and a restart hand nothing over twice. After a crash, the batch
// that was being handled comes again in full: a handler that must be exactly-once across crashes
// stores the Key with what it writes (an upsert keyed on it, or on the object's identity
// (object_type, object_id), is enough).
//
// Usage:
//
//	c, err := client.Connect(ctx, "nats://nats-1:4222,nats://nats-2:4222")
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	cons, err := c.Consumer(ctx, "vendor") // amrctl topology apply --downstream vendor
//	if err != nil {
//		return err
//	}
//	return cons.Run(ctx, func(ctx context.Context, r *amrpipev1.Record) error {
//		if f := r.GetFile(); f != nil {
//			return db.UpsertFile(ctx, r.GetJobId(), f) // nil: processed, the record is not handed over again
//		}
//		return nil
//	})
//
// The program cmd/amrconsume is a complete example that prints records as JSON lines.
package client
