package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stmcginnis/gofish/schemas"
)

// taskDoc is the part of a Task resource the driver reads.
type taskDoc struct {
	ODataID    string `json:"@odata.id"`
	TaskState  schemas.TaskState
	TaskStatus string
	Messages   []struct {
		Message string
	}
}

// running reports whether a task state means "not finished yet".
func running(s schemas.TaskState) bool {
	switch s {
	case schemas.NewTaskState, schemas.StartingTaskState, schemas.RunningTaskState,
		schemas.SuspendedTaskState, schemas.InterruptedTaskState, schemas.PendingTaskState,
		schemas.StoppingTaskState, schemas.ServiceTaskState, schemas.CancellingTaskState:
		return true
	}
	return false
}

// waitTask follows the task an answer started (202 Accepted with a task
// monitor in Location, or a Task in the body) until it ends or ctx does.
// An answer that started no task returns at once.
func (b *BMC) waitTask(ctx context.Context, resp *response) error {
	if resp.status != http.StatusAccepted {
		return nil
	}
	monitor := resp.header.Get("Location")
	var task taskDoc
	_ = json.Unmarshal(resp.body, &task)
	if monitor == "" {
		monitor = task.ODataID
	}
	if monitor == "" {
		return nil // accepted, but nothing to follow
	}
	delay := retryAfter(resp.header, pollFirst)
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("task %s: still %s: %w", monitor, orUnknown(string(task.TaskState)), ctx.Err())
		case <-t.C:
		}
		r, err := b.do(ctx, request{method: http.MethodGet, path: monitor})
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("task %s: still %s: %w", monitor, orUnknown(string(task.TaskState)), ctx.Err())
		case statusIs(err, http.StatusNotFound):
			return nil // monitors may vanish once the operation completed
		case err != nil && isTransient(err):
			delay = min(delay*2, pollMax)
			continue
		case err != nil:
			return fmt.Errorf("task %s: %w", monitor, err)
		}
		if r.status == http.StatusAccepted {
			_ = json.Unmarshal(r.body, &task)
			delay = min(retryAfter(r.header, delay*2), pollMax)
			continue
		}
		if r.status == http.StatusNoContent {
			return nil
		}
		task = taskDoc{}
		if json.Unmarshal(r.body, &task) != nil || task.TaskState == "" {
			return nil // the monitor answered with the operation's own result
		}
		if running(task.TaskState) {
			delay = min(delay*2, pollMax)
			continue
		}
		if task.TaskState == schemas.CompletedTaskState && task.TaskStatus != "Critical" {
			return nil
		}
		return fmt.Errorf("task %s: %s (%s)%s", monitor, task.TaskState, orUnknown(task.TaskStatus), taskMessages(task))
	}
}

func retryAfter(h http.Header, def time.Duration) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, 30*time.Second)
	}
	return def
}

func taskMessages(t taskDoc) string {
	var ms []string
	for _, m := range t.Messages {
		if m.Message != "" {
			ms = append(ms, m.Message)
		}
	}
	if len(ms) == 0 {
		return ""
	}
	return ": " + strings.Join(ms, "; ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
