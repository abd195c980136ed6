package export

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/amrpipe/amrpipe/services/spsim/tenant"
)

func testKey() []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	return key
}

// decryptBlob decrypts with the standard library alone: AES-256-CBC, the IV from the blob's IV
// metadata, ciphertext from byte 0, PKCS#7 padding checked strictly.
func decryptBlob(t *testing.T, key []byte, b blob) []byte {
	t.Helper()
	plain, pad := decryptRaw(t, key, b)
	return plain[:len(plain)-pad]
}

// decryptRaw returns the decrypted blob with its padding still attached, and the padding length.
func decryptRaw(t *testing.T, key []byte, b blob) ([]byte, int) {
	t.Helper()
	if len(b.metadata) != 1 || b.metadata["IV"] == nil {
		t.Fatalf("%s: metadata %v, want exactly the key IV", b.name, b.metadata)
	}
	iv, err := base64.StdEncoding.DecodeString(*b.metadata["IV"])
	if err != nil || len(iv) != aes.BlockSize {
		t.Fatalf("%s: IV %q: %v", b.name, *b.metadata["IV"], err)
	}
	if len(b.data) == 0 || len(b.data)%aes.BlockSize != 0 {
		t.Fatalf("%s: ciphertext length %d is not a positive multiple of 16", b.name, len(b.data))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(b.data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, b.data)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("%s: bad PKCS#7 padding % x", b.name, plain[len(plain)-aes.BlockSize:])
	}
	return plain, pad
}

func TestEncryptionRoundTrip(t *testing.T) {
	opts := fixtureOptions()
	plainSink := writePackage(t, opts, fixtureObjects(), fixtureUsers(), fixtureGroups())
	opts.Key = testKey()
	encSink := writePackage(t, opts, fixtureObjects(), fixtureUsers(), fixtureGroups())

	if len(encSink.blobs) != len(plainSink.blobs) {
		t.Fatalf("%d encrypted blobs, %d plain", len(encSink.blobs), len(plainSink.blobs))
	}
	ivs := map[string]string{}
	for i, b := range encSink.blobs {
		want := plainSink.blobs[i]
		if b.name != want.name || want.metadata != nil {
			t.Fatalf("blob %d: %s (plain %s, metadata %v)", i, b.name, want.name, want.metadata)
		}
		if bytes.Contains(b.data, []byte("<?xml")) {
			t.Errorf("%s: ciphertext contains plaintext", b.name)
		}
		if got := decryptBlob(t, opts.Key, b); !bytes.Equal(got, want.data) {
			t.Errorf("%s: decrypts to\n%s\nwant\n%s", b.name, got, want.data)
		}
		iv := *b.metadata["IV"]
		if other, dup := ivs[iv]; dup {
			t.Errorf("%s reuses the IV of %s", b.name, other)
		}
		ivs[iv] = b.name
	}
}

func TestPKCS7FullBlock(t *testing.T) {
	// Find a file name that makes Manifest.xml a multiple of 16 bytes long.
	for n := range aes.BlockSize {
		objs := []*tenant.Object{{Type: tenant.TypeFolder, ID: folderID, ParentID: rootID, ListID: libID,
			Name: strings.Repeat("a", n+1), WebID: webID, WebURL: webURL, ServerURL: libURL + "/a",
			WebRelURL: "Shared Documents/a"}}
		opts := fixtureOptions()
		plain := writePackage(t, opts, objs, nil, nil).get(t, jobID+"/Manifest.xml")
		if len(plain.data)%aes.BlockSize != 0 {
			continue
		}
		opts.Key = testKey()
		enc := writePackage(t, opts, objs, nil, nil).get(t, jobID+"/Manifest.xml")
		if len(enc.data) != len(plain.data)+aes.BlockSize {
			t.Fatalf("ciphertext %d bytes for %d bytes of plaintext, want a whole pad block", len(enc.data), len(plain.data))
		}
		got, pad := decryptRaw(t, opts.Key, enc)
		if pad != aes.BlockSize || !bytes.Equal(got[:len(got)-pad], plain.data) {
			t.Fatalf("padding %d, want a full block of 16", pad)
		}
		return
	}
	t.Fatal("no name length gave a manifest whose length is a multiple of 16")
}
