package amrevent_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/amrevent"
)

// FuzzDecodeEvent: DecodeEvent never panics and fails only with its typed
// errors; a decoded event survives EncodeEvent and DecodeEvent unchanged
// (the same message and EventID).
func FuzzDecodeEvent(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.data)
	}
	f.Add([]byte(`{"Event":"JobEnd","ObjectsStatsByType":{"SPFile":{"Count":1,"X":[true]}},"N":1e3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := amrevent.DecodeEvent(data)
		if err != nil {
			var fe *amrevent.FieldError
			if !errors.Is(err, amrevent.ErrNotJSON) && !errors.Is(err, amrevent.ErrNoEventName) && !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc, err := amrevent.EncodeEvent(ev)
		if err != nil {
			t.Fatalf("EncodeEvent: %v", err)
		}
		back, err := amrevent.DecodeEvent(enc)
		if err != nil {
			t.Fatalf("decoding re-encoded %s: %v", enc, err)
		}
		if amrevent.EventID(back) != amrevent.EventID(ev) {
			t.Fatalf("EventID changed by re-encoding:\n%v\n%v", ev, back)
		}
		if !proto.Equal(back, ev) {
			t.Fatalf("re-encoding changed the event:\n%v\n%v\nvia %s", ev, back, enc)
		}
	})
}

// FuzzDecodeQueueMessage: arbitrary message text never panics and fails only
// with typed errors; an envelope built around any plaintext decrypts back to
// it (or is refused as ErrWrongKey when it does not start like JSON); the
// base64 and raw forms of a plain event decode alike.
func FuzzDecodeQueueMessage(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(base64.StdEncoding.EncodeToString(fx.data), fx.data)
	}
	f.Add(envelope(f, encrypted(f, testKey, testIV, []byte(`{"Event":"JobEnd"}`))), []byte(" [1]"))
	f.Add("%%", []byte("<not json>"))
	f.Fuzz(func(t *testing.T, text string, plain []byte) {
		if _, err := amrevent.DecodeQueueMessage(text, lookup); err != nil && !isQueueError(err) {
			t.Fatalf("untyped error %v", err)
		}

		msg := b64(envelope(t, encrypted(t, testKey, testIV, plain)))
		got, err := amrevent.DecodeQueueMessage(msg, lookup)
		switch {
		case errors.Is(err, aescbc.ErrWrongKey):
			if startsLikeJSON(plain) {
				t.Fatalf("plaintext %q refused as a wrong key", plain)
			}
		case err != nil:
			t.Fatalf("envelope of %q: %v", plain, err)
		case !bytes.Equal(got, plain):
			t.Fatalf("envelope: got %q, want %q", got, plain)
		}

		raw, errRaw := amrevent.DecodeQueueMessage(string(plain), lookup)
		viaB64, errB64 := amrevent.DecodeQueueMessage(base64.StdEncoding.EncodeToString(plain), lookup)
		if errRaw == nil && (errB64 != nil || !bytes.Equal(raw, viaB64)) {
			t.Fatalf("raw gives %q, base64 gives %q, %v", raw, viaB64, errB64)
		}
	})
}

func isQueueError(err error) bool {
	for _, target := range []error{amrevent.ErrNotJSON, amrevent.ErrMalformedEnvelope, amrevent.ErrNoKey,
		aescbc.ErrTruncated, aescbc.ErrBadPadding, aescbc.ErrWrongKey} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// startsLikeJSON mirrors aescbc.ExpectJSON: '{' or '[' after a BOM and whitespace.
func startsLikeJSON(b []byte) bool {
	b = bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}
