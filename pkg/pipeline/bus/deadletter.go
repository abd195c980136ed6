package bus

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	amrpipev1 "github.com/amrpipe/amrpipe/proto/gen/amrpipe/v1"
)

// newDeadLetter records everything an operator needs to understand and replay a message.
func newDeadLetter(stage string, msg jetstream.Msg, meta *jetstream.MsgMetadata, reason string) *amrpipev1.DeadLetter {
	headers := make(map[string]string, len(msg.Headers()))
	for k, v := range msg.Headers() {
		headers[k] = strings.Join(v, ", ")
	}
	return &amrpipev1.DeadLetter{
		Stage:          stage,
		Subject:        msg.Subject(),
		Reason:         reason,
		Payload:        msg.Data(),
		Headers:        headers,
		Deliveries:     meta.NumDelivered,
		At:             timestamppb.New(time.Now()),
		MsgId:          msg.Headers().Get(jetstream.MsgIDHeader),
		Stream:         meta.Stream,
		StreamSequence: meta.Sequence.Stream,
	}
}
