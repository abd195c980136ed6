package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/amrpipe/amrpipe/cmd/amrctl/internal/deadletter"
	"github.com/amrpipe/amrpipe/pkg/sharepoint/sas"
)

func dlqCommand(connect connectFunc) *cobra.Command {
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "Dead letters: list them, show one decoded, replay them",
		Long: "The messages a stage gave up on are kept in AMR_DLQ (amr.dlq.<stage>) with the reason. " +
			"Dead letters are read with an ordered consumer: looking leaves nothing on the server. " +
			"SAS signatures and URL passwords in what is printed are redacted.",
	}
	dlq.AddCommand(dlqListCommand(connect), dlqShowCommand(connect), dlqReplayCommand(connect))
	return dlq
}

// letterRow is a dead letter in `dlq list`.
type letterRow struct {
	Seq        uint64    `json:"seq"`
	Stage      string    `json:"stage"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`
	Subject    string    `json:"subject"`
	Type       string    `json:"type,omitempty"`
	JobID      string    `json:"job_id,omitempty"`
	SpecID     string    `json:"spec_id,omitempty"`
	PlanID     string    `json:"plan_id,omitempty"`
	Deliveries uint64    `json:"deliveries"`
}

func rowOf(l deadletter.Letter) letterRow {
	ids := l.IDs()
	r := letterRow{Seq: l.Seq, Stage: l.GetStage(), At: l.GetAt().AsTime().UTC(), Reason: sas.Redact(l.GetReason()),
		Subject: sas.Redact(l.GetSubject()), JobID: ids.Job, SpecID: ids.Spec, PlanID: ids.Plan, Deliveries: l.GetDeliveries()}
	if m := l.Payload(); m != nil {
		r.Type = string(m.ProtoReflect().Descriptor().FullName())
	}
	return r
}

func dlqListCommand(connect connectFunc) *cobra.Command {
	var stage, since string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "One line per dead letter: sequence, stage, when, job or spec, original subject, reason",
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince("--since", since, time.Now())
			if err != nil {
				return err
			}
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			letters, err := deadletter.List(cmd.Context(), js, deadletter.Filter{Stage: stage, Since: from})
			if err != nil {
				return err
			}
			rows := make([]letterRow, len(letters))
			for i, l := range letters {
				rows[i] = rowOf(l)
			}
			return render(cmd, rows, func(out io.Writer) error {
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SEQ\tSTAGE\tAT\tJOB / SPEC\tSUBJECT\tREASON")
				for _, r := range rows {
					who := r.JobID
					if who == "" {
						who = r.SpecID
					}
					if who == "" {
						who = r.PlanID
					}
					if who == "" {
						who = "-"
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Stage, r.At.Format(time.RFC3339), who, r.Subject, oneLine(r.Reason, 200))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only the dead letters of this stage (planner, submitter, progress-relay, decryptor, parser)")
	cmd.Flags().StringVar(&since, "since", "", "only those stored since: a duration back from now (90m) or an RFC 3339 time")
	return cmd
}

// letterDetail is `dlq show`: the dead letter with its payload decoded.
type letterDetail struct {
	letterRow
	MsgID          string            `json:"msg_id,omitempty"`
	Stream         string            `json:"stream,omitempty"`
	StreamSequence uint64            `json:"stream_sequence,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	// Payload is the original message in protojson; PayloadText the payload as text when it is
	// not a message of the pipeline.
	Payload     any    `json:"payload,omitempty"`
	PayloadText string `json:"payload_text,omitempty"`
}

func dlqShowCommand(connect connectFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "show SEQ",
		Short: "A dead letter with its original message decoded as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := parseSeq(args[0])
			if err != nil {
				return err
			}
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			l, err := getLetter(cmd, js, seq)
			if err != nil {
				return err
			}
			d := letterDetail{letterRow: rowOf(l), MsgID: l.GetMsgId(), Stream: l.GetStream(), StreamSequence: l.GetStreamSequence(),
				Headers: map[string]string{}}
			for k, v := range l.GetHeaders() {
				d.Headers[k] = sas.Redact(v)
			}
			if m := l.Payload(); m != nil {
				data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
				if err != nil {
					return fmt.Errorf("dead letter %d: %w", seq, err)
				}
				d.Payload = rawJSON(sas.Redact(string(data)))
			} else {
				d.PayloadText = sas.Redact(strings.ToValidUTF8(string(l.GetPayload()), "?"))
			}
			return render(cmd, d, func(w io.Writer) error {
				fmt.Fprintf(w, "dead letter %d of stage %s, %s, after %d deliveries\n", d.Seq, d.Stage, d.At.Format(time.RFC3339), d.Deliveries)
				fmt.Fprintf(w, "reason:   %s\n", d.Reason)
				fmt.Fprintf(w, "subject:  %s (stream %s sequence %d, msg id %s)\n", d.Subject, d.Stream, d.StreamSequence, d.MsgID)
				if d.Type != "" {
					fmt.Fprintf(w, "payload:  %s\n%s\n", d.Type, indentJSON(string(d.Payload.(rawJSON))))
				} else {
					fmt.Fprintf(w, "payload (text):\n%s\n", d.PayloadText)
				}
				return nil
			})
		},
	}
}

func dlqReplayCommand(connect connectFunc) *cobra.Command {
	var all bool
	var stage string
	cmd := &cobra.Command{
		Use:   "replay (SEQ... | --all --stage STAGE)",
		Short: "Republish dead letters on their original subjects, then delete them",
		Long: "Republish each dead letter's original message on its original subject with its headers and a new " +
			"Nats-Msg-Id derived from the dead letter (" + deadletter.ReplayMsgID(deadletter.Letter{Seq: 42}) + " for sequence 42), " +
			"so replaying twice publishes once; the dead letter is deleted only after the publish is acknowledged.",
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && stage == "":
				return usageErrorf("--all replays every dead letter of one stage: give --stage")
			case all && len(args) > 0:
				return usageErrorf("give sequences or --all --stage, not both")
			case !all && len(args) == 0:
				return usageErrorf("give the sequences to replay (see `amrctl dlq list`), or --all --stage STAGE")
			case !all && stage != "":
				return usageErrorf("--stage goes with --all")
			}
			seqs := make([]uint64, len(args))
			for i, a := range args {
				s, err := parseSeq(a)
				if err != nil {
					return err
				}
				seqs[i] = s
			}
			nc, js, err := connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			var letters []deadletter.Letter
			if all {
				if letters, err = deadletter.List(cmd.Context(), js, deadletter.Filter{Stage: stage}); err != nil {
					return err
				}
			}
			for _, s := range seqs {
				l, err := getLetter(cmd, js, s)
				if err != nil {
					return err
				}
				letters = append(letters, l)
			}
			type replayed struct {
				Seq      uint64 `json:"seq"`
				Subject  string `json:"subject"`
				Stream   string `json:"stream"`
				Sequence uint64 `json:"sequence"`
				// Duplicate: the stream had this replay already (a replay whose delete was lost).
				Duplicate bool `json:"duplicate"`
			}
			var done []replayed
			var failed error
			for _, l := range letters {
				ack, err := deadletter.Replay(cmd.Context(), js, l)
				if err != nil {
					failed = errors.Join(failed, sas.RedactError(err))
					continue
				}
				done = append(done, replayed{Seq: l.Seq, Subject: l.GetSubject(), Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate})
			}
			if err := render(cmd, done, func(w io.Writer) error {
				for _, r := range done {
					dup := ""
					if r.Duplicate {
						dup = " (a duplicate of an earlier replay)"
					}
					fmt.Fprintf(w, "replayed dead letter %d on %s: %s sequence %d%s\n", r.Seq, r.Subject, r.Stream, r.Sequence, dup)
				}
				return nil
			}); err != nil {
				return err
			}
			return failed
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter of --stage")
	cmd.Flags().StringVar(&stage, "stage", "", "with --all: the stage whose dead letters to replay")
	return cmd
}

// getLetter reads a dead letter; an absent one is ErrNotFound (exit status 3).
func getLetter(cmd *cobra.Command, js jetstream.JetStream, seq uint64) (deadletter.Letter, error) {
	l, err := deadletter.Get(cmd.Context(), js, seq)
	if errors.Is(err, deadletter.ErrNotFound) {
		return l, fmt.Errorf("%w: no dead letter at sequence %d of AMR_DLQ", ErrNotFound, seq)
	}
	return l, err
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, usageErrorf("%q is not a dead letter's sequence (a positive number: see `amrctl dlq list`)", s)
	}
	return n, nil
}

// rawJSON is JSON text that encoding/json embeds as it is.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// indentJSON indents JSON text for people (as it is when it does not parse).
func indentJSON(s string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(s), "", "  "); err != nil {
		return s
	}
	return b.String()
}

// oneLine shortens text to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
