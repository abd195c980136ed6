package decryptor_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/bus"
	"github.com/amrpipe/amrpipe/pkg/pipeline/jobstore"
	"github.com/amrpipe/amrpipe/pkg/pipeline/manifestcopy"
	"github.com/amrpipe/amrpipe/pkg/pipeline/svc"
	"github.com/amrpipe/amrpipe/pkg/pipeline/topology"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
	"github.com/amrpipe/amrpipe/pkg/stage/decryptor"
	"github.com/amrpipe/amrpipe/pkg/stage/parser"
	"github.com/amrpipe/amrpipe/pkg/testenv"
	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
	"github.com/amrpipe/amrpipe/services/spsim/server"
)

// storage is the Azurite all tests of the package share.
var storage *testenv.Azurite

func TestMain(m *testing.M) { os.Exit(testenv.RunWithAzurite(m, &storage)) }

// runDecryptor starts a decryptor on its own runtime.
// oneJob starts a world with a decryptor and records one job of it; ctx lasts a minute.
func oneJob(t *testing.T) (context.Context, *testenv.World, *svc.Runtime, testenv.Job) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := testenv.StartWorld(t, storage, nil)
	rt := runDecryptor(t, e)
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Record(t, ctx, j)
	return ctx, e, rt, j
}

func runDecryptor(t testing.TB, e *testenv.World) *svc.Runtime {
	t.Helper()
	deps := e.Deps(t, decryptor.Def(), nil)
	s, err := decryptor.New(decryptor.Config{Concurrency: 4}, deps)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunStage(t, s.Run)
	return deps.Runtime
}

// upload is one FinishManifestFileUpload of a job's log, as the relay publishes it.
type upload struct {
	name string // ManifestFileName
	msg  *amrpipev1.RelayedEvent
}

// relayUploads publishes the job's FinishManifestFileUpload events as the relay would (spec id as
// given) and returns them.
func relayUploads(t *testing.T, ctx context.Context, e *testenv.World, jobID, specID string, log []string) []upload {
	t.Helper()
	var ups []upload
	for _, l := range log {
		ev, err := amrevent.DecodeEvent([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetFinishManifestFileUpload() == nil {
			continue
		}
		u := upload{name: ev.GetFinishManifestFileUpload().GetManifestFileName(),
			msg: &amrpipev1.RelayedEvent{EventId: amrevent.EventID(ev), Source: amrpipev1.Source_SOURCE_PROGRESS_API, Event: ev, SpecId: specID}}
		publishEvent(t, ctx, e, jobID, u.msg, u.msg.GetEventId())
		ups = append(ups, u)
	}
	return ups
}

func publishEvent(t testing.TB, ctx context.Context, e *testenv.World, jobID string, m *amrpipev1.RelayedEvent, msgID string) {
	t.Helper()
	if _, err := bus.Publish(ctx, e.NATS.JS, topology.EventSubject(jobID, topology.EventFinishManifestFileUpload), m, msgID); err != nil {
		t.Fatal(err)
	}
}

// uploadEvent is a FinishManifestFileUpload of jobID naming name.
func uploadEvent(jobID, specID, name string) *amrpipev1.RelayedEvent {
	ev := &amrpipev1.MigrationEvent{Type: amrpipev1.EventType_EVENT_TYPE_FINISH_MANIFEST_FILE_UPLOAD, RawName: "FinishManifestFileUpload", JobId: jobID,
		Payload: &amrpipev1.MigrationEvent_FinishManifestFileUpload{FinishManifestFileUpload: &amrpipev1.FinishManifestFileUpload{ManifestFileName: name}}}
	return &amrpipev1.RelayedEvent{EventId: amrevent.EventID(ev), Event: ev, SpecId: specID}
}

// idle waits until the decryptor has settled every event for good.
func idle(t *testing.T, ctx context.Context, e *testenv.World) {
	t.Helper()
	cons, err := e.NATS.JS.Consumer(ctx, topology.StreamEvents, topology.ConsumerDecryptor)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the decryptor to settle every event", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

func manifests(t *testing.T, ctx context.Context, e *testenv.World, jobID string) []*amrpipev1.ManifestReady {
	t.Helper()
	return testenv.Messages(t, context.Background(), e.NATS.JS, topology.StreamManifests, topology.ManifestSubject(jobID), func() *amrpipev1.ManifestReady { return &amrpipev1.ManifestReady{} })
}

// blob downloads a blob through the job's SAS and decrypts it independently of pkg/crypto/aescbc: the
// standard library's CBC with the IV from metadata and a hand-checked PKCS#7 padding.
func blob(t *testing.T, ctx context.Context, j testenv.Job, name string) []byte {
	t.Helper()
	cc, err := container.NewClientWithNoCredential(j.ContainerSAS, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if j.Key == nil {
		return data
	}
	var iv []byte
	for k, v := range resp.Metadata {
		if strings.EqualFold(k, "iv") && v != nil {
			iv, err = base64.StdEncoding.DecodeString(*v)
		}
	}
	if err != nil || len(iv) != aes.BlockSize || len(data)%aes.BlockSize != 0 || len(data) == 0 {
		t.Fatalf("%s: IV %x (%v), %d bytes of ciphertext", name, iv, err, len(data))
	}
	block, err := aes.NewCipher(j.Key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(data, data)
	pad := int(data[len(data)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(data[len(data)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("%s: bad padding", name)
	}
	return data[:len(data)-pad]
}

// manifestStore is the decrypted manifests' object store.
func manifestStore(t *testing.T, ctx context.Context, e *testenv.World) jetstream.ObjectStore {
	t.Helper()
	obs, err := e.NATS.JS.ObjectStore(ctx, topology.ObjectManifests)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// storedObject is the object name's bytes, as stored, and its info.
func storedObject(t *testing.T, ctx context.Context, e *testenv.World, name string) ([]byte, *jetstream.ObjectInfo) {
	t.Helper()
	obs := manifestStore(t, ctx, e)
	raw, err := obs.GetBytes(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return raw, info
}

// object is the decrypted file the object name holds, as the parser reads it.
func object(t *testing.T, ctx context.Context, e *testenv.World, name string) ([]byte, error) {
	t.Helper()
	file, obj, err := manifestcopy.Get(ctx, manifestStore(t, ctx, e), name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = obj.Close() }()
	return io.ReadAll(file)
}

func TestEveryUploadBecomesOneManifest(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "encrypted", true: "unencrypted"}[plain], func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			e := testenv.StartWorld(t, storage, nil)
			rt := runDecryptor(t, e)
			j := e.CreateJob(t, ctx, testenv.JobOptions{Plain: plain})
			e.Record(t, ctx, j)
			ups := relayUploads(t, ctx, e, j.ID, j.SpecID, e.Log(t, ctx, j))
			idle(t, ctx, e)

			ready := map[string]*amrpipev1.ManifestReady{} // by file: files are decrypted in parallel
			for _, r := range manifests(t, ctx, e, j.ID) {
				if ready[r.GetFile()] != nil {
					t.Errorf("two ManifestReady for %s", r.GetFile())
				}
				ready[r.GetFile()] = r
			}
			if len(ready) != len(ups) || len(ups) < 9 {
				t.Fatalf("%d ManifestReady for %d uploads; want one each (and a split package)", len(ready), len(ups))
			}
			for _, u := range ups {
				want := blob(t, ctx, j, u.name)
				_, file, _ := strings.Cut(u.name, "/")
				r := ready[file]
				raw, info := storedObject(t, ctx, e, r.GetObject()) // the object's own bytes: the file compressed
				sum := sha256.Sum256(raw)
				if r.GetJobId() != j.ID || r.GetFile() != file || r.GetObject() != j.ID+"/"+file || r.GetSize() != int64(len(want)) ||
					r.GetSha256() != hex.EncodeToString(sum[:]) || r.GetSpecId() != j.SpecID {
					t.Errorf("ManifestReady %v; want %s, %d bytes, the object's sha256 %x, spec %s", r, u.name, len(want), sum, j.SpecID)
				}
				if enc := info.Headers.Get(manifestcopy.EncodingHeader); enc != manifestcopy.EncodingS2 {
					t.Errorf("object %s encoded %q, want %q", r.GetObject(), enc, manifestcopy.EncodingS2)
				}
				got, err := object(t, ctx, e, r.GetObject())
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("object %s: %d bytes (%v), want the %d bytes of the decrypted blob", r.GetObject(), len(got), err, len(want))
				}
				if !bytes.HasPrefix(bytes.TrimPrefix(got, []byte("\xef\xbb\xbf")), []byte("<?xml")) {
					t.Errorf("object %s does not start with an XML declaration: %.40q", r.GetObject(), got)
				}
			}

			// Redelivery: every upload handled again (as after a crash before the Ack).
			for _, u := range ups {
				publishEvent(t, ctx, e, j.ID, u.msg, u.msg.GetEventId()+"-again")
			}
			idle(t, ctx, e)
			if again := manifests(t, ctx, e, j.ID); len(again) != len(ups) {
				t.Errorf("after redelivery %d ManifestReady, want still %d", len(again), len(ups))
			}
			if n := testenv.Counter(t, rt, "amr_decryptor_duplicates_total", nil); int(n) != len(ups) {
				t.Errorf("amr_decryptor_duplicates_total = %v, want %d", n, len(ups))
			}
			// A redelivered upload reuses the stored object: an object a parser may be reading is
			// never written again.
			mode := map[bool]string{false: "decrypted", true: "copied"}[plain]
			if n := testenv.Counter(t, rt, "amr_decryptor_manifests_total", map[string]string{"mode": mode}); int(n) != len(ups) {
				t.Errorf("amr_decryptor_manifests_total{mode=%s} = %v, want %d", mode, n, len(ups))
			}
			if n := testenv.Counter(t, rt, "amr_decryptor_manifests_total", map[string]string{"mode": "reused"}); int(n) != len(ups) {
				t.Errorf("amr_decryptor_manifests_total{mode=reused} = %v, want %d", n, len(ups))
			}
			if dl := e.NATS.DeadLetters(t, topology.StageDecryptor); len(dl) != 0 {
				t.Errorf("dead letters: %v", dl[0].GetReason())
			}
		})
	}
}

func TestUntrustworthyUploadsAreDeadLettered(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	runDecryptor(t, e)
	const other = "9a3f5c1e-0000-4000-8000-00000000beef"
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Record(t, ctx, j)
	e.Log(t, ctx, j)

	tests := []struct {
		name, file, reason string
	}{
		{"parent folder", "../" + j.ID + "/Manifest.xml", "outside the folder"},
		{"a URL", "https://evil.example/x.xml?sig=TOPSECRET", "outside the folder"},
		{"another job's folder", other + "/Manifest.xml", "outside the folder of job " + j.ID},
		{"a subfolder", j.ID + "/sub/Manifest.xml", `"/"`},
		{"dot dot", j.ID + "/..", "dot file or a parent folder"},
		{"backslash", j.ID + `/..\..\x.xml`, "dot file or a parent folder"},
		{"control character", j.ID + "/Manifest\n.xml", "in its file name"},
		{"too long", j.ID + "/" + strings.Repeat("m", 200) + ".xml", "over 128"},
	}
	for _, tt := range tests {
		publishEvent(t, ctx, e, j.ID, uploadEvent(j.ID, j.SpecID, tt.file), tt.name)
	}
	idle(t, ctx, e)
	dls := e.NATS.DeadLetters(t, topology.StageDecryptor)
	if len(dls) != len(tests) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(tests))
	}
	reasons := map[string]string{} // by the name in the dead-lettered event
	for _, dl := range dls {
		var re amrpipev1.RelayedEvent
		if err := proto.Unmarshal(dl.GetPayload(), &re); err != nil {
			t.Fatal(err)
		}
		reasons[re.GetEvent().GetFinishManifestFileUpload().GetManifestFileName()] = dl.GetReason()
	}
	for _, tt := range tests {
		if r := reasons[tt.file]; !strings.Contains(r, "bad ManifestFileName") || !strings.Contains(r, tt.reason) || strings.Contains(r, "TOPSECRET") {
			t.Errorf("%s: reason %q, want a bad name %q (and no signature)", tt.name, r, tt.reason)
		}
	}
	if ready := manifests(t, ctx, e, j.ID); len(ready) != 0 {
		t.Errorf("hostile names produced %d manifests", len(ready))
	}
}

func TestTruncatedUploadIsDeadLetteredWithItsReason(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	e.Faults(t, server.Rule{Job: "truncated-upload"})
	runDecryptor(t, e)
	j := e.CreateJob(t, ctx, testenv.JobOptions{})
	e.Record(t, ctx, j)
	ups := relayUploads(t, ctx, e, j.ID, j.SpecID, e.Log(t, ctx, j))
	idle(t, ctx, e)

	var cut []string
	for _, u := range ups {
		if strings.Contains(u.name, "/Manifest") {
			cut = append(cut, u.name)
		}
	}
	dls := e.NATS.DeadLetters(t, topology.StageDecryptor)
	if len(dls) != len(cut) || len(cut) == 0 {
		t.Fatalf("%d dead letters for %d truncated manifests", len(dls), len(cut))
	}
	for _, dl := range dls {
		if !strings.Contains(dl.GetReason(), "truncated or corrupt") {
			t.Errorf("reason %q, want it to say the blob is truncated", dl.GetReason())
		}
	}
	if ready := manifests(t, ctx, e, j.ID); len(ready) != len(ups)-len(cut) {
		t.Errorf("%d ManifestReady, want one for each of the %d intact files", len(ready), len(ups)-len(cut))
	}
	for _, name := range cut {
		if _, err := object(t, ctx, e, name); err == nil {
			t.Errorf("a truncated blob left object %s", name)
		}
	}
}

func TestWrongKeyIsAClearErrorNotGarbage(t *testing.T) {
	t.Parallel()
	ctx, e, rt, j := oneJob(t)
	const wrongSpec = "spec-with-another-key"
	e.PutKey(t, ctx, wrongSpec, bytes.Repeat([]byte{0x77}, 32))
	ups := relayUploads(t, ctx, e, j.ID, wrongSpec, e.Log(t, ctx, j))
	idle(t, ctx, e)

	dls := e.NATS.DeadLetters(t, topology.StageDecryptor)
	if len(dls) != len(ups) {
		t.Fatalf("%d dead letters for %d files under the wrong key", len(dls), len(ups))
	}
	for _, dl := range dls {
		if !strings.Contains(dl.GetReason(), "wrong key") || !strings.Contains(dl.GetReason(), wrongSpec) {
			t.Errorf("reason %q, want a wrong key of spec %s", dl.GetReason(), wrongSpec)
		}
	}
	if ready := manifests(t, ctx, e, j.ID); len(ready) != 0 {
		t.Errorf("%d manifests decrypted with the wrong key went downstream", len(ready))
	}
	if n := testenv.Counter(t, rt, "amr_decryptor_errors_total", map[string]string{"class": "wrong_key"}); int(n) != len(ups) {
		t.Errorf("amr_decryptor_errors_total{class=wrong_key} = %v, want %d", n, len(ups))
	}
}

func TestBlobNotThereYetIsRetried(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := testenv.StartWorld(t, storage, nil)
	rt := runDecryptor(t, e)
	key := bytes.Repeat([]byte{0x42}, 32)
	j := testenv.Job{ID: "5b0e6c2a-7d1f-4c3b-8a9e-2f4d6b8c0a1e", SpecID: "spec-late", Site: e.SimURL + testenv.Site, Key: key,
		// Azurite outlives the test (-count=2 would find the blob already there).
		Container: "late-blob-" + strconv.FormatInt(time.Now().UnixNano(), 36)}
	e.PutKey(t, ctx, j.SpecID, key)
	e.Record(t, ctx, j)
	name := j.ID + "/Manifest.xml"
	publishEvent(t, ctx, e, j.ID, uploadEvent(j.ID, j.SpecID, name), "late")
	testenv.Eventually(t, 10*time.Second, "a failed attempt", func() bool {
		return testenv.Counter(t, rt, "amr_decryptor_errors_total", map[string]string{"class": "not_found"}) > 0
	})

	plain := []byte(`<?xml version="1.0" encoding="utf-8"?><SPObjects xmlns="urn:deployment-manifest-schema"/>`)
	putEncrypted(t, ctx, e, j.Container, name, key, plain)
	idle(t, ctx, e)
	ready := manifests(t, ctx, e, j.ID)
	if len(ready) != 1 || ready[0].GetSize() != int64(len(plain)) {
		t.Fatalf("ManifestReady %v; want the late blob's", ready)
	}
	if got, err := object(t, ctx, e, ready[0].GetObject()); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("object %q, %v", got, err)
	}
}

// putEncrypted uploads plain encrypted under key as SharePoint does: ciphertext from byte 0, the IV
// in the blob's "IV" metadata.
func putEncrypted(t testing.TB, ctx context.Context, e *testenv.World, containerName, name string, key, plain []byte) {
	t.Helper()
	iv := bytes.Repeat([]byte{9}, 16)
	ct, err := aescbc.Encrypt(key, iv, plain)
	if err != nil {
		t.Fatal(err)
	}
	acct := e.Account(t, "")
	if err := acct.EnsureContainer(ctx, containerName); err != nil {
		t.Fatal(err)
	}
	ivText := base64.StdEncoding.EncodeToString(iv)
	if _, err := acct.Blob().UploadBuffer(ctx, containerName, name, ct, &azblob.UploadBufferOptions{Metadata: map[string]*string{"IV": &ivText}}); err != nil {
		t.Fatal(err)
	}
}

// TestIncompleteObjectIsStoredAgain: an object whose description outlived its chunks (an object
// store write whose acknowledgements were lost while a cluster's leader changed: the client purges
// the chunks, the description can stay) is not taken for stored: the redelivered upload decrypts
// and stores it again, whole.
func TestIncompleteObjectIsStoredAgain(t *testing.T) {
	t.Parallel()
	ctx, e, rt, j := oneJob(t)
	ups := relayUploads(t, ctx, e, j.ID, j.SpecID, e.Log(t, ctx, j))
	idle(t, ctx, e)

	u := ups[0]
	_, file, _ := strings.Cut(u.name, "/")
	name := topology.ManifestObject(j.ID, file)
	obs := manifestStore(t, ctx, e)
	info, err := obs.GetInfo(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.NATS.JS.Stream(ctx, topology.ObjectStream(topology.ObjectManifests))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$O."+topology.ObjectManifests+".C."+info.NUID)); err != nil {
		t.Fatal(err)
	}

	publishEvent(t, ctx, e, j.ID, u.msg, u.msg.GetEventId()+"-again")
	idle(t, ctx, e)
	got, err := object(t, ctx, e, name)
	if want := blob(t, ctx, j, u.name); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("object %s after the redelivery: %d bytes (%v), want the %d bytes of the blob", name, len(got), err, len(want))
	}
	if n := testenv.Counter(t, rt, "amr_decryptor_manifests_total", map[string]string{"mode": "decrypted"}); int(n) != len(ups)+1 {
		t.Errorf("amr_decryptor_manifests_total{mode=decrypted} = %v, want %d (the incomplete one again)", n, len(ups)+1)
	}
	if n := testenv.Counter(t, rt, "amr_decryptor_manifests_total", map[string]string{"mode": "reused"}); n != 0 {
		t.Errorf("amr_decryptor_manifests_total{mode=reused} = %v, want 0", n)
	}
}

// TestStoreGoneIsCreatedAgain: a standalone server's restart takes the in-memory manifests store
// away with its files (topology.Options.ManifestStorage). The decryptor creates it again and
// stores the file it was decrypting; nothing is dead-lettered.
func TestStoreGoneIsCreatedAgain(t *testing.T) {
	t.Parallel()
	ctx, e, _, j := oneJob(t)
	// The handle the decryptor bound at start outlives the store, as it does across a restart.
	if err := e.NATS.JS.DeleteStream(ctx, topology.ObjectStream(topology.ObjectManifests)); err != nil {
		t.Fatal(err)
	}
	ups := relayUploads(t, ctx, e, j.ID, j.SpecID, e.Log(t, ctx, j))
	idle(t, ctx, e)
	for _, u := range ups {
		_, file, _ := strings.Cut(u.name, "/")
		got, err := object(t, ctx, e, topology.ManifestObject(j.ID, file))
		if want := blob(t, ctx, j, u.name); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the store was gone: %d bytes (%v), want the %d bytes of the blob", u.name, len(got), err, len(want))
		}
	}
	if got := len(manifests(t, ctx, e, j.ID)); got != len(ups) {
		t.Fatalf("%d ManifestReady for %d uploads", got, len(ups))
	}
}

// TestExpiredCopyIsDecryptedAgain: the parser found a file's decrypted copy gone and asks for it
// again (parser.RedecryptRequest). The decryptor decrypts the blob anew into the object store (the
// same bytes, without a second ManifestReady: the parser holds its own); when Azure no longer has
// the blob, the file fails on its job with the reason; for a file its job lists as parsed nothing
// happens.
func TestExpiredCopyIsDecryptedAgain(t *testing.T) {
	t.Parallel()
	ctx, e, rt, j := oneJob(t)
	ups := relayUploads(t, ctx, e, j.ID, j.SpecID, e.Log(t, ctx, j))
	idle(t, ctx, e)
	before := manifests(t, ctx, e, j.ID)
	if len(ups) < 3 || len(before) != len(ups) {
		t.Fatalf("%d ManifestReady for %d uploads", len(before), len(ups))
	}
	obs := manifestStore(t, ctx, e)
	_, again, _ := strings.Cut(ups[0].name, "/")  // its copy expired; the blob is still there
	_, lost, _ := strings.Cut(ups[1].name, "/")   // its copy expired and its blob is gone
	_, parsed, _ := strings.Cut(ups[2].name, "/") // parsed, its copy deleted by the parser
	for _, f := range []string{again, lost, parsed} {
		if err := obs.Delete(ctx, topology.ManifestObject(j.ID, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Account(t, "").Blob().DeleteBlob(ctx, j.Container, ups[1].name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.Fire(ctx, j.ID, jobstore.FileAnnounced(lost), jobstore.FileParsed(jobstore.ParsedFile{File: parsed})); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{again, lost, parsed} {
		id := parser.RedecryptID(j.ID, f, uint64(i+1))
		req := parser.RedecryptRequest(j.ID, f, j.SpecID, id, f+": decrypted object gone", time.Now())
		if _, err := bus.Publish(ctx, e.NATS.JS, topology.EventSubject(j.ID, topology.EventManifestExpired), req, id); err != nil {
			t.Fatal(err)
		}
	}
	idle(t, ctx, e)

	got, err := object(t, ctx, e, topology.ManifestObject(j.ID, again))
	if want := blob(t, ctx, j, ups[0].name); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s decrypted again: %d bytes (%v), want the %d bytes of the blob", again, len(got), err, len(want))
	}
	if n := testenv.Counter(t, rt, "amr_decryptor_manifests_total", map[string]string{"mode": "decrypted_again"}); n != 1 {
		t.Errorf("amr_decryptor_manifests_total{mode=decrypted_again} = %v, want 1", n)
	}
	if after := manifests(t, ctx, e, j.ID); len(after) != len(before) {
		t.Errorf("%d ManifestReady after the requests, want still %d", len(after), len(before))
	}
	if _, err := object(t, ctx, e, topology.ManifestObject(j.ID, parsed)); err == nil {
		t.Errorf("the copy of %s, which its job lists as parsed, was made again", parsed)
	}
	rec, _, err := e.Store.Job(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.GetFilesFailed(), []string{lost}) || !strings.Contains(rec.GetLastError(), "is gone from container") {
		t.Fatalf("job record: files failed %v, last error %q; want %s failed because its blob is gone", rec.GetFilesFailed(), rec.GetLastError(), lost)
	}
	dls := e.NATS.DeadLetters(t, topology.StageDecryptor)
	if len(dls) != 1 || !strings.Contains(dls[0].GetReason(), lost) {
		t.Fatalf("dead letters %v, want one for %s", dls, lost)
	}
}
