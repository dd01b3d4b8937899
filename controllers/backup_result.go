package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// agentResult is the JSON object `buytracker-node backup ...` writes to
// its --result-file (docs/operator.md, "Backups and restores").
type agentResult struct {
	Location  string   `json:"location,omitempty"`
	ClusterID string   `json:"cluster_id,omitempty"`
	NodeID    string   `json:"node_id,omitempty"`
	Index     int64    `json:"index,omitempty"`
	Purchases int64    `json:"purchases,omitempty"`
	CreatedAt string   `json:"created_at,omitempty"`
	Checksum  string   `json:"checksum,omitempty"`
	SizeBytes int64    `json:"size_bytes,omitempty"`
	Pruned    []string `json:"pruned,omitempty"`
	Skipped   bool     `json:"skipped,omitempty"`
	Error     string   `json:"error,omitempty"`
	// Reason of a failure: invalid, unreadable or failed.
	Reason string `json:"reason,omitempty"`
}

// Reasons of a failed agent run.
const (
	agentInvalid    = "invalid"
	agentUnreadable = "unreadable"
)

// jobOutcome is what a finished agent Job left: done is false while it
// runs; ok when it completed; result is its pod's termination message,
// parsed (nil when there is none, or it is not the agent's JSON: then
// message holds the text, or the Job's own reason for failing).
type jobOutcome struct {
	done, ok bool
	result   *agentResult
	message  string
}

// maxReportedMessage bounds an agent's text copied into a condition.
const maxReportedMessage = 1024

// outcomeOf reads a Job's final condition and, once it finished, the
// termination message of its pod (the succeeded one, or the last that
// failed), read from the API server rather than the cache.
func outcomeOf(ctx context.Context, reader client.Reader, job *batchv1.Job) (jobOutcome, error) {
	var out jobOutcome
	var jobMessage string
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			out.done, out.ok = true, true
		case batchv1.JobFailed:
			out.done = true
			jobMessage = strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	if !out.done {
		return out, nil
	}
	var pods corev1.PodList
	if err := reader.List(ctx, &pods, client.InNamespace(job.Namespace), client.MatchingLabels{labelJobName: job.Name}); err != nil {
		return out, fmt.Errorf("list pods of job %s: %w", job.Name, err)
	}
	var text string
	var latest *corev1.ContainerStateTerminated
	for i := range pods.Items {
		p := &pods.Items[i]
		if out.ok && p.Status.Phase != corev1.PodSucceeded {
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			t := cs.State.Terminated
			if t == nil || strings.TrimSpace(t.Message) == "" {
				continue
			}
			if latest == nil || latest.FinishedAt.Before(&t.FinishedAt) {
				latest, text = t, strings.TrimSpace(t.Message)
			}
		}
	}
	if text != "" {
		var r agentResult
		if err := json.Unmarshal([]byte(text), &r); err == nil {
			out.result = &r
			out.message = r.Error
		} else {
			out.message = cut(text, maxReportedMessage)
		}
	}
	if out.message == "" {
		out.message = jobMessage
	}
	return out, nil
}
