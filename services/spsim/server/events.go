package server

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// usTime is the time format of migration events ("12/04/2019 01:47:45.938").
const usTime = "01/02/2006 15:04:05.000"

// eventJSON encodes an event the way SharePoint does: a flat object whose values are all strings,
// keys in the order given (kv alternates key and value).
func eventJSON(kv ...string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		v, _ := json.Marshal(kv[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// emit appends an event to the job's log (read through GetMigrationJobProgress) and, when the job
// has a queue, posts it there too. Every event gets its own CorrelationId, as SharePoint's do.
func (s *Server) emit(ctx context.Context, j *job, event string, kv ...string) {
	j.mu.Lock()
	seq := len(j.events)
	j.mu.Unlock()
	now := time.Now().UTC()
	fields := append([]string{"Event", event, "JobId", j.id, "Time", now.Format(usTime)}, kv...)
	fields = append(fields, "CorrelationId", correlationID(j.id, seq))
	data := eventJSON(fields...)
	j.mu.Lock()
	j.events = append(j.events, data)
	j.mu.Unlock()
	if j.queueURL != "" {
		if err := s.postQueue(ctx, j, data); err != nil {
			// SharePoint does not fail a job because its report queue is unreachable.
			s.log.Warn("queue message not posted", "job", j.id, "event", event, "err", err)
		}
	}
}

// correlationID derives a stable GUID-shaped id for the seq-th event of a job.
func correlationID(jobID string, seq int) string {
	h := sha256.Sum256([]byte(jobID + "/" + strconv.Itoa(seq)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// postQueue sends one event as a base64 queue message, in the encrypted envelope when the job has
// a key.
func (s *Server) postQueue(ctx context.Context, j *job, event []byte) error {
	body := event
	if j.key != nil {
		env, err := encryptEnvelope(j.id, j.key, event)
		if err != nil {
			return err
		}
		body = env
	}
	qc, err := azqueue.NewQueueClientWithNoCredential(j.queueURL, &azqueue.ClientOptions{})
	if err != nil {
		return fmt.Errorf("queue client: %w", err)
	}
	_, err = qc.EnqueueMessage(ctx, base64.StdEncoding.EncodeToString(body), nil)
	if err != nil {
		return fmt.Errorf("enqueue: %w", redactErr(err))
	}
	return nil
}

// encryptEnvelope wraps an event as {"Label":"Encrypted","JobId","IV","Content"} with AES-256-CBC
// and PKCS#7 padding under the job's key and a fresh IV.
func encryptEnvelope(jobID string, key, plain []byte) ([]byte, error) {
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("iv: %w", err)
	}
	ct, err := cbcEncrypt(key, iv, plain)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Label, JobId, IV, Content string
	}{"Encrypted", jobID, base64.StdEncoding.EncodeToString(iv), base64.StdEncoding.EncodeToString(ct)})
}

// cbcEncrypt is AES-256-CBC with PKCS#7 padding.
func cbcEncrypt(key, iv, plain []byte) ([]byte, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	out := make([]byte, len(plain)+pad)
	copy(out, plain)
	for i := len(plain); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, out)
	return out, nil
}
