package clusterview

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write the report as JSON: %w", err)
	}
	return nil
}

// incarnationWidth is how much of an incarnation the table shows: enough
// to tell two apart, as a short Git hash does (JSON has it whole).
const incarnationWidth = 12

// WriteTable writes the report for people: a summary, the members, the
// conditions, the last backup and what could not be learnt.
func WriteTable(w io.Writer, r Report) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "BuyTracker %s/%s: %d/%d ready", r.Namespace, r.Name, r.ReadyReplicas, r.Replicas)
	if c := r.condition("Available"); c != nil {
		fmt.Fprintf(b, ", Available=%s (%s)", c.Status, c.Reason)
	}
	b.WriteString("\n")
	switch {
	case r.ClusterFrom == "":
		b.WriteString("Leader: unknown (no member answered GET /cluster)\n")
	case r.Leader == "":
		fmt.Fprintf(b, "Leader: none, term %d (as %s sees it)\n", r.Term, r.ClusterFrom)
	default:
		fmt.Fprintf(b, "Leader: %s, term %d; commit index %d, applied %d, last %d\n", r.Leader, r.Term, r.CommitIndex, r.AppliedIndex, r.LastIndex)
	}

	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tSUFFRAGE\tREADY\tLAST INDEX\tLAG\tINCARNATION\tNOTES")
	for _, m := range r.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", m.Name, dash(m.Role), dash(m.suffrage()), m.Ready,
			optional(m.LastIndex), optional(m.Lag), dash(shorten(m.Incarnation, incarnationWidth)), m.notes())
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(r.Conditions) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CONDITION\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range r.Conditions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, dash(c.Reason), c.LastTransitionTime.Format(time.RFC3339), oneLine(c.Message))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if lb := r.LastBackup; lb != nil {
		fmt.Fprintf(b, "\nLast backup: %s, index %d, %d purchases", lb.Name, lb.Index, lb.Purchases)
		if lb.CompletedAt != nil {
			fmt.Fprintf(b, ", completed %s", lb.CompletedAt.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(b, "\nProblem: %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r Report) condition(t string) *Condition {
	for i := range r.Conditions {
		if r.Conditions[i].Type == t {
			return &r.Conditions[i]
		}
	}
	return nil
}

func (m Member) suffrage() string {
	if !m.InConfiguration && m.Suffrage == "" {
		return "not a member"
	}
	return m.Suffrage
}

// notes are the member's exceptional states, most serious first.
func (m Member) notes() string {
	var notes []string
	if m.Error != "" {
		notes = append(notes, "unreachable: "+oneLine(m.Error))
	}
	if m.OutOfService != "" {
		notes = append(notes, "out of service: "+oneLine(m.OutOfService))
	}
	if m.DiskPressure {
		notes = append(notes, fmt.Sprintf("disk pressure (%s free of %s)", mebibytes(m.DiskFreeBytes), mebibytes(m.DiskTotalBytes)))
	}
	if m.Joining {
		notes = append(notes, "joining")
	}
	return strings.Join(notes, "; ")
}

func optional(v *uint64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(*v, 10)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// mebibytes writes a size in MiB, the unit the operator's status rounds to.
func mebibytes(n uint64) string {
	return fmt.Sprintf("%dMi", n>>20)
}
