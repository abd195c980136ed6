package client_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/amrpipe/amrpipe/pkg/client"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// Example reads every record through the declared consumer "vendor" and prints each file's
// name and size; a second run would resume after the last acknowledged batch. Here the example
// starts an embedded JetStream with the topology and publishes one batch as the parser would;
// a real program connects to the deployment instead.
func Example() {
	url, cleanup := exampleServer()
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.Connect(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	cons, err := c.Consumer(ctx, "vendor", client.WithFollow(false)) // follow: the default, until ctx ends
	if err != nil {
		fmt.Println(err) // e.g. "... run amrctl topology apply --downstream vendor"
		return
	}
	err = cons.Run(ctx, func(ctx context.Context, r *amrpipev1.Record) error {
		if f := r.GetFile(); f != nil {
			fmt.Printf("%s %s %d bytes\n", r.GetJobId(), f.GetServerRelativeUrl(), f.GetFileSize())
		}
		return nil // processed: acknowledged with the rest of its batch
	})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// job-1 /sites/hr/Shared Documents/a.docx 1024 bytes
	// job-1 /sites/hr/Shared Documents/b.xlsx 2048 bytes
}

// ExampleJSONLines prints records in the JSON mapping of docs/records.md: field names as in the
// .proto, 64-bit integers as strings, zero values left out.
func ExampleJSONLines() {
	url, cleanup := exampleServer()
	defer cleanup()
	ctx := context.Background()
	c, err := client.Connect(ctx, url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	cons, err := c.Consumer(ctx, "vendor", client.WithFollow(false))
	if err == nil {
		err = cons.RunBatches(ctx, client.JSONLines(os.Stdout))
	}
	if err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"job_id":"job-1","source_file":"Manifest.xml","object_id":"f1","object_type":"SPFile","file":{"id":"f1","name":"a.docx","server_relative_url":"/sites/hr/Shared Documents/a.docx","file_size":"1024"}}
	// {"job_id":"job-1","source_file":"Manifest.xml","object_id":"f2","object_type":"SPFile","sequence":"1","file":{"id":"f2","name":"b.xlsx","server_relative_url":"/sites/hr/Shared Documents/b.xlsx","file_size":"2048"}}
}

// exampleServer starts an embedded JetStream with the topology (declaring the consumer
// "vendor") and publishes one record batch of two files.
func exampleServer() (url string, cleanup func()) {
	srv, err := testenv.StartNATS(testenv.NATSOptions{})
	if err != nil {
		panic(err)
	}
	nc, js, err := testenv.Connect(srv.ClientURL(), "example")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := topology.Ensure(ctx, js, topology.Options{Downstream: []string{"vendor"}}); err != nil {
		panic(err)
	}
	b := &amrpipev1.RecordBatch{JobId: "job-1", SourceFile: "Manifest.xml"}
	for i, f := range []*amrpipev1.File{
		{Id: "f1", Name: "a.docx", ServerRelativeUrl: "/sites/hr/Shared Documents/a.docx", FileSize: 1024},
		{Id: "f2", Name: "b.xlsx", ServerRelativeUrl: "/sites/hr/Shared Documents/b.xlsx", FileSize: 2048},
	} {
		b.Records = append(b.Records, &amrpipev1.Record{JobId: "job-1", SourceFile: "Manifest.xml", Sequence: uint64(i),
			ObjectId: f.GetId(), ObjectType: "SPFile", Body: &amrpipev1.Record_File{File: f}})
	}
	if _, err := bus.Publish(ctx, js, topology.RecordSubject("job-1"), b, "job-1/Manifest.xml/v1/0-2"); err != nil {
		panic(err)
	}
	return srv.ClientURL(), func() {
		nc.Close()
		_ = srv.Close()
	}
}
