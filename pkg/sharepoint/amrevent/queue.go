package amrevent

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/amrpipe/amrpipe/pkg/crypto/aescbc"
)

// Errors of DecodeQueueMessage (besides ErrNotJSON and the aescbc errors,
// which come wrapped).
var (
	ErrMalformedEnvelope = errors.New("amrevent: malformed encrypted envelope")
	ErrNoKey             = errors.New("amrevent: no key for job")
)

// KeyLookup returns the AES-256 key of a job; it returns an error wrapping
// ErrNoKey when the job is unknown. Other errors (a key store outage) are
// passed through wrapped, so the caller can retry them.
type KeyLookup func(jobID string) ([]byte, error)

// QueueMessage is what an Azure queue message carried.
type QueueMessage struct {
	// Event is the plain event JSON.
	Event []byte
	// Encrypted says the event came in an encrypted envelope, decrypted with the key of
	// EnvelopeJobID: only SharePoint (and we) hold that key, so the event is authenticated as
	// far as CBC allows. A plain event is not: anyone with the queue's Add SAS can post one.
	Encrypted     bool
	EnvelopeJobID string
}

// DecodeQueueMessage turns an Azure queue message text into the plain event
// JSON. The text is base64 (standard or URL-safe, padding and whitespace
// tolerated) or raw JSON. An encrypted envelope
// {"Label":"Encrypted","JobId":…,"IV":…,"Content":…} is decrypted with the
// job's key (AES-256-CBC, PKCS#7); a plain event is returned as it is, marked
// unauthenticated. Texts over the Azure queue's 64 KiB are refused (ErrTooLarge).
func DecodeQueueMessage(text string, keys KeyLookup) (QueueMessage, error) {
	if len(text) > maxQueueText {
		return QueueMessage{}, fmt.Errorf("%w: a queue message of %d bytes", ErrTooLarge, len(text))
	}
	body := []byte(strings.TrimSpace(text))
	if !bytes.HasPrefix(body, []byte("{")) {
		decoded, err := decodeBase64(text)
		if err != nil {
			return QueueMessage{}, fmt.Errorf("%w: message text is neither JSON nor base64", ErrNotJSON)
		}
		body = bytes.TrimSpace(bytes.TrimPrefix(decoded, []byte("\xef\xbb\xbf")))
	}
	obj, err := parseObject(body)
	if err != nil {
		return QueueMessage{}, err
	}
	if firstKey(obj, "label", "Label") == "" || firstKey(obj, keyEvent, commonWireNames[keyEvent]) != "" {
		return QueueMessage{Event: body}, nil
	}
	field := func(canonical string) string {
		s, _ := scalarText(obj[firstKey(obj, normalize(canonical), canonical)])
		return strings.TrimSpace(s)
	}
	if l := field("Label"); !strings.EqualFold(l, "Encrypted") {
		return QueueMessage{}, fmt.Errorf("%w: Label %q", ErrMalformedEnvelope, l)
	}
	jobID := field("JobId")
	if jobID == "" {
		return QueueMessage{}, fmt.Errorf("%w: no JobId", ErrMalformedEnvelope)
	}
	iv, err := decodeBase64(field("IV"))
	if err != nil || len(iv) != 16 {
		return QueueMessage{}, fmt.Errorf("%w: job %s: IV is not base64 of 16 bytes", ErrMalformedEnvelope, jobID)
	}
	content, err := decodeBase64(field("Content"))
	if err != nil || len(content) == 0 {
		return QueueMessage{}, fmt.Errorf("%w: job %s: Content is not base64 ciphertext", ErrMalformedEnvelope, jobID)
	}
	if keys == nil {
		return QueueMessage{}, fmt.Errorf("%w %s: no key lookup given", ErrNoKey, jobID)
	}
	key, err := keys(jobID)
	if err != nil {
		return QueueMessage{}, fmt.Errorf("amrevent: key for job %s: %w", jobID, err)
	}
	if key == nil {
		return QueueMessage{}, fmt.Errorf("%w %s", ErrNoKey, jobID)
	}
	plain, err := aescbc.Decrypt(key, iv, content, aescbc.WithExpect(aescbc.ExpectJSON))
	if err != nil {
		return QueueMessage{}, fmt.Errorf("amrevent: decrypt message of job %s: %w", jobID, err)
	}
	return QueueMessage{Event: plain, Encrypted: true, EnvelopeJobID: jobID}, nil
}

// maxQueueText is Azure's bound of a queue message (64 KiB), base64 of which is a third longer.
const maxQueueText = 64 << 10 * 4 / 3

// decodeBase64 accepts standard and URL-safe base64, with or without
// padding, ignoring whitespace (queue tools wrap long lines).
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
