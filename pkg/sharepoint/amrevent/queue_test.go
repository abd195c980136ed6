package amrevent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
)

const testJob = "1efa0a61-ec6e-4225-83fe-14196215476c"

var (
	testKey = bytes.Repeat([]byte{0x5a}, 32)
	testIV  = []byte("0123456789abcdef")
)

// lookup knows testJob's key only.
func lookup(jobID string) ([]byte, error) {
	if jobID == testJob {
		return testKey, nil
	}
	return nil, fmt.Errorf("job %s: %w", jobID, amrevent.ErrNoKey)
}

// envelope builds the encrypted queue message JSON the way SharePoint does.
func envelope(t testing.TB, fields map[string]string) string {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func encrypted(t testing.TB, key, iv, plain []byte) map[string]string {
	t.Helper()
	ct, err := aescbc.Encrypt(key, iv, plain)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"Label":   "Encrypted",
		"JobId":   testJob,
		"IV":      base64.StdEncoding.EncodeToString(iv),
		"Content": base64.StdEncoding.EncodeToString(ct),
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for key, val := range m {
		out[key] = val
	}
	if v == "<delete>" {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDecodeQueueMessage(t *testing.T) {
	events := bytes.Split(bytes.TrimSpace(readFile(t, filepath.Join("testdata", "verbatim", "amr-2019.jsonl"))), []byte("\n"))
	plain := string(events[1]) // FinishManifestFileUpload
	env := encrypted(t, testKey, testIV, []byte(plain))
	wrapped := func(s string) string { // a long base64 line wrapped like some tools do
		var b strings.Builder
		for i := 0; i < len(s); i += 76 {
			b.WriteString(s[i:min(i+76, len(s))] + "\r\n")
		}
		return b.String()
	}
	tests := []struct {
		name      string
		text      string
		encrypted bool
	}{
		{"base64 plain event", b64(plain), false},
		{"raw JSON plain event", plain, false},
		{"URL-safe base64 without padding", base64.RawURLEncoding.EncodeToString([]byte(plain + " ")), false},
		{"base64 wrapped over lines", wrapped(b64(plain)), false},
		{"base64 encrypted envelope", b64(envelope(t, env)), true},
		{"raw JSON encrypted envelope", envelope(t, env), true},
		{"IV and Content without padding, URL-safe", envelope(t, with(with(env,
			"IV", strings.TrimRight(env["IV"], "=")),
			"Content", strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(env["Content"]), "="))), true},
		{"label in lower case", b64(envelope(t, with(env, "Label", "encrypted"))), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := amrevent.DecodeQueueMessage(tt.text, lookup)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Event) != plain || got.Encrypted != tt.encrypted {
				t.Fatalf("got %q (encrypted %v), want %q (encrypted %v)", got.Event, got.Encrypted, plain, tt.encrypted)
			}
			if tt.encrypted && !strings.EqualFold(got.EnvelopeJobID, testJob) {
				t.Fatalf("envelope job %q, want %s", got.EnvelopeJobID, testJob)
			}
			ev, err := amrevent.DecodeEvent(got.Event)
			if err != nil || ev.GetFinishManifestFileUpload().GetManifestFileName() != testJob+"/Manifest.xml" {
				t.Errorf("decoded %v, %v", ev, err)
			}
		})
	}
}

func TestDecodeQueueMessageErrors(t *testing.T) {
	plain := []byte(`{"Event":"JobEnd","JobId":"` + testJob + `"}`)
	env := encrypted(t, testKey, testIV, plain)
	longCT, err := aescbc.Encrypt(testKey, testIV, bytes.Repeat(plain, 4))
	if err != nil {
		t.Fatal(err)
	}
	longCT[len(longCT)-1] ^= 1 // garbles the last block only
	tests := []struct {
		name string
		text string
		keys amrevent.KeyLookup
		want error
	}{
		{"neither base64 nor JSON", "%%% not a message %%%", lookup, amrevent.ErrNotJSON},
		{"empty", "  ", lookup, amrevent.ErrNotJSON},
		{"base64 of text", b64("hello"), lookup, amrevent.ErrNotJSON},
		{"doc example envelope", string(readFile(t, filepath.Join("testdata", "verbatim", "encrypted-queue-message.doc-example.txt"))), lookup, amrevent.ErrNotJSON},
		{"other label", envelope(t, with(env, "Label", "Compressed")), lookup, amrevent.ErrMalformedEnvelope},
		{"no JobId", envelope(t, with(env, "JobId", "<delete>")), lookup, amrevent.ErrMalformedEnvelope},
		{"no IV", envelope(t, with(env, "IV", "<delete>")), lookup, amrevent.ErrMalformedEnvelope},
		{"IV not base64", envelope(t, with(env, "IV", "not base64!")), lookup, amrevent.ErrMalformedEnvelope},
		{"IV 15 bytes", envelope(t, with(env, "IV", base64.StdEncoding.EncodeToString(testIV[:15]))), lookup, amrevent.ErrMalformedEnvelope},
		{"no Content", envelope(t, with(env, "Content", "<delete>")), lookup, amrevent.ErrMalformedEnvelope},
		{"Content not base64", envelope(t, with(env, "Content", "***")), lookup, amrevent.ErrMalformedEnvelope},
		{"unknown job", envelope(t, with(env, "JobId", "00000000-0000-0000-0000-000000000000")), lookup, amrevent.ErrNoKey},
		{"no lookup", envelope(t, env), nil, amrevent.ErrNoKey},
		{"lookup returns nothing", envelope(t, env), func(string) ([]byte, error) { return nil, nil }, amrevent.ErrNoKey},
		{"key of 16 bytes", envelope(t, env), func(string) ([]byte, error) { return testKey[:16], nil }, aescbc.ErrKeySize},
		{"wrong key", envelope(t, env), func(string) ([]byte, error) { return bytes.Repeat([]byte{1}, 32), nil }, aescbc.ErrWrongKey},
		{"Content cut short", envelope(t, with(env, "Content", base64.StdEncoding.EncodeToString([]byte("fifteen bytes!!")))), lookup, aescbc.ErrTruncated},
		{"last block corrupt", envelope(t, with(env, "Content", base64.StdEncoding.EncodeToString(longCT))), lookup, aescbc.ErrBadPadding},
		{"over Azure's 64 KiB", strings.Repeat("A", 100<<10), lookup, amrevent.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := amrevent.DecodeQueueMessage(tt.text, tt.keys)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %q, err %v; want %v", got.Event, err, tt.want)
			}
			for _, secret := range []string{base64.StdEncoding.EncodeToString(testKey), fmt.Sprintf("%x", testKey)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the key", err)
				}
			}
		})
	}
}
