package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// maxLogLine bounds one log line; the node logs one JSON object a line.
const maxLogLine = 1 << 20

// runLogs prints every member's node log, each line tagged "[pod] ".
// Without -f the members' logs come one after another; with -f they are
// streamed together, lines interleaved as they arrive, until ctx ends.
func runLogs(ctx context.Context, s *session, name string) error {
	bt, err := s.kube.getBuyTracker(ctx, name)
	if err != nil {
		return err
	}
	pods, err := s.kube.memberPods(ctx, bt)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("BuyTracker %s/%s has no pods", bt.Namespace, bt.Name)
	}
	names := podNames(pods)
	out := &lineWriter{w: s.stdout}
	var (
		mu     sync.Mutex
		failed []string
	)
	fail := func(pod string, err error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(s.stderr, "%s: %v\n", pod, err)
		failed = append(failed, pod)
	}
	if !s.opts.follow {
		for _, pod := range names {
			if err := s.copyLog(ctx, pod, out); err != nil {
				fail(pod, err)
			}
		}
	} else {
		var wg sync.WaitGroup
		for _, pod := range names {
			wg.Go(func() {
				if err := s.copyLog(ctx, pod, out); err != nil && ctx.Err() == nil {
					fail(pod, err)
				}
			})
		}
		wg.Wait()
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not read the logs of %s", strings.Join(failed, ", "))
	}
	return nil
}

// copyLog streams one pod's node container log into out, tagged.
func (s *session) copyLog(ctx context.Context, pod string, out *lineWriter) error {
	opts := logOptions(s.opts)
	stream, err := s.kube.core.CoreV1().Pods(s.kube.namespace).GetLogs(pod, opts).Stream(ctx)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer stream.Close()
	return tagLines(stream, "["+pod+"] ", out)
}

// logOptions turns the flags into the pods/log API's options.
func logOptions(o *options) *corev1.PodLogOptions {
	opts := &corev1.PodLogOptions{Container: nodeContainer, Follow: o.follow}
	if o.since > 0 {
		secs := int64(o.since.Seconds())
		opts.SinceSeconds = &secs
	}
	if o.tail >= 0 {
		tail := o.tail
		opts.TailLines = &tail
	}
	return opts
}

// tagLines copies r into out line by line, each line prefixed.
func tagLines(r io.Reader, prefix string, out *lineWriter) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		if err := out.writeLine(prefix, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("read log: %w", err)
	}
	return nil
}

// lineWriter writes whole lines, so that lines of members streamed at
// once never mix.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) writeLine(prefix string, line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	_, err := l.w.Write(buf)
	return err
}
