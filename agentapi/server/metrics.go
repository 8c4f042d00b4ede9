package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"metalsync.dev/metalsync/agentapi"
)

// metrics are the agent listener's Prometheus metrics; nil fields when
// Config.Registerer is nil.
type metrics struct {
	requests *prometheus.CounterVec // endpoint, code
	commands *prometheus.CounterVec // step, result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metalsync_agent_requests_total", Help: "Requests to the agent listener, by endpoint and status code (401: refused token).",
		}, []string{"endpoint", "code"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metalsync_agent_commands_total", Help: "Agent commands the executor waited for, by step and how they ended.",
		}, []string{"step", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.commands} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("agent metrics: %w", err)
		}
	}
	return m, nil
}

// endpoint names a request's path with a bounded set of labels.
func endpoint(path string) string {
	switch {
	case path == agentapi.PathNext:
		return "next"
	case path == agentapi.PathResult:
		return "result"
	case path == agentapi.PathLog:
		return "log"
	case path == agentapi.PathConfigDrive:
		return "configdrive"
	case strings.HasPrefix(path, agentapi.PathImage):
		return "image"
	}
	return "other"
}

func (m *metrics) request(path string, code int) {
	m.requests.WithLabelValues(endpoint(path), strconv.Itoa(code)).Inc()
}

func (m *metrics) command(step, result string) {
	m.commands.WithLabelValues(step, result).Inc()
}
