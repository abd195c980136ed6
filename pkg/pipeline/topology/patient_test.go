package topology

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestAgainAsksOnlyWhenNoReplyCame(t *testing.T) {
	tests := []struct {
		name      string
		replies   []error // what each try gets; the last repeats
		wantCalls int
		wantErr   error
	}{
		{"answered at once", []error{nil}, 1, nil},
		{"reply lost, then answered", []error{context.DeadlineExceeded, nil}, 2, nil},
		{"no responders while a leader is elected", []error{nats.ErrNoResponders, jetstream.ErrNoStreamResponse, nil}, 3, nil},
		{"a refusal is returned, not asked again", []error{fmt.Errorf("stream: %w", jetstream.ErrStreamNotFound)}, 1, jetstream.ErrStreamNotFound},
		{"a server without JetStream: no responders, five times", []error{nats.ErrNoResponders}, 5, nats.ErrNoResponders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			v, err := again(context.Background(), func(ctx context.Context) (int, error) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("a try has no deadline of its own")
				}
				err := tt.replies[min(calls, len(tt.replies)-1)]
				calls++
				if err != nil {
					return 0, err
				}
				return 7, nil
			})
			if calls != tt.wantCalls {
				t.Errorf("%d tries, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || v != 7 {
				t.Fatalf("again = %d, %v; want 7, nil", v, err)
			}
		})
	}
}

func TestAgainStopsWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	calls := 0
	_, err := again(ctx, func(context.Context) (int, error) {
		calls++
		return 0, nats.ErrTimeout
	})
	if !errors.Is(err, nats.ErrTimeout) || ctx.Err() == nil {
		t.Fatalf("again = %v after %d tries; want the last error once its context ended", err, calls)
	}
}
