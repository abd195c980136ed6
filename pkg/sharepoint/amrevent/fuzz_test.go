package amrevent_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
	"unicode/utf8"

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
			if !errors.Is(err, amrevent.ErrNotJSON) && !errors.Is(err, amrevent.ErrNoEventName) && !errors.Is(err, amrevent.ErrTooLarge) && !errors.As(err, &fe) {
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
		case !bytes.Equal(got.Event, plain) || !got.Encrypted:
			t.Fatalf("envelope: got %q (encrypted %v), want %q", got.Event, got.Encrypted, plain)
		}

		raw, errRaw := amrevent.DecodeQueueMessage(string(plain), lookup)
		viaB64, errB64 := amrevent.DecodeQueueMessage(base64.StdEncoding.EncodeToString(plain), lookup)
		if errRaw == nil && (errB64 != nil || !bytes.Equal(raw.Event, viaB64.Event) || raw.Encrypted != viaB64.Encrypted) {
			t.Fatalf("raw gives %q, base64 gives %q, %v", raw.Event, viaB64.Event, errB64)
		}
		if errRaw == nil && raw.Encrypted && bytes.HasPrefix(bytes.TrimSpace(plain), []byte(`{"Event"`)) {
			t.Fatalf("a plain event %q passed as encrypted", plain)
		}
	})
}

func isQueueError(err error) bool {
	for _, target := range []error{amrevent.ErrNotJSON, amrevent.ErrMalformedEnvelope, amrevent.ErrNoKey, amrevent.ErrTooLarge,
		aescbc.ErrTruncated, aescbc.ErrBadPadding, aescbc.ErrWrongKey} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// startsLikeJSON mirrors aescbc.ExpectJSON: after a BOM, the first block is text (valid UTF-8,
// no control character but tab, CR and LF) and opens with '{' or '[' after whitespace.
func startsLikeJSON(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	head := b[:min(len(b), 16)]
	for len(head) > 0 {
		r, n := utf8.DecodeRune(head)
		if r == utf8.RuneError && n <= 1 {
			if utf8.FullRune(head) {
				return false
			}
			break
		}
		if r < 0x20 && r != '\t' && r != '\r' && r != '\n' || r == 0x7f {
			return false
		}
		head = head[n:]
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}
