package daemon

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"metalsync.dev/metalsync/reconcile/apply"
)

// Metrics are the daemon's Prometheus metrics, in a registry of their own
// (no global default registry).
type Metrics struct {
	Registry *prometheus.Registry

	ReconcileDuration prometheus.Histogram
	Actions           *prometheus.CounterVec   // kind, result
	StepLatency       *prometheus.HistogramVec // driver, op: driver-facing step latency
	NodesByState      *prometheus.GaugeVec     // provision state
	Faults            prometheus.Gauge
	LastGoodCommit    *prometheus.GaugeVec // commit label, value = unix time it became good
	InvalidCommits    prometheus.Counter
	// RefusedChanges counts changed fields the rights table refused in
	// revisions that were therefore not acted on.
	RefusedChanges  prometheus.Counter
	InventoryErrors prometheus.Gauge
	PushRetries     prometheus.Counter
	StatusCommits   prometheus.Counter
	Fetches         *prometheus.CounterVec // result
	WebhookRequests *prometheus.CounterVec // result
	// PlanErrors counts nodes newly refused by the planner (or refused for
	// a new reason); NodesWithPlanErrors is how many are refused now.
	PlanErrors          prometheus.Counter
	NodesWithPlanErrors prometheus.Gauge
}

// NewMetrics registers every metric in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ReconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "metalsync_reconcile_duration_seconds", Help: "Duration of one reconcile pass (plan and apply).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metalsync_actions_total", Help: "Steps run by the executor, by operation and result.",
		}, []string{"op", "result"}),
		StepLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "metalsync_bmc_step_duration_seconds", Help: "Duration of executor steps that call the BMC, by driver and operation.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"driver", "op"}),
		NodesByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metalsync_nodes", Help: "Nodes by observed provision state.",
		}, []string{"state"}),
		Faults: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metalsync_faulted_nodes", Help: "Nodes under an automatic fault (quarantine).",
		}),
		LastGoodCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metalsync_last_good_commit_timestamp_seconds", Help: "When the commit in the label became the last valid inventory commit.",
		}, []string{"commit"}),
		InvalidCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_invalid_commits_total", Help: "Commits refused because the inventory was invalid.",
		}),
		RefusedChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_refused_changes_total", Help: "Changed fields the rights table refused; their revisions were not acted on.",
		}),
		InventoryErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metalsync_inventory_errors", Help: "Validation errors in the newest fetched commit.",
		}),
		PushRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_status_push_retries_total", Help: "Status pushes retried after a non-fast-forward.",
		}),
		StatusCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_status_commits_total", Help: "Status commits pushed.",
		}),
		Fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metalsync_git_fetches_total", Help: "Fetches of the inventory remote, by result.",
		}, []string{"result"}),
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metalsync_webhook_requests_total", Help: "Webhook requests, by result.",
		}, []string{"result"}),
		PlanErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "metalsync_plan_errors_total", Help: "Nodes the planner refused, counted once per new reason.",
		}),
		NodesWithPlanErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "metalsync_nodes_with_plan_errors", Help: "Nodes the last plan refused (nothing runs for them).",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ReconcileDuration, m.Actions, m.StepLatency, m.NodesByState, m.Faults, m.LastGoodCommit,
		m.InvalidCommits, m.RefusedChanges, m.InventoryErrors, m.PushRetries, m.StatusCommits, m.Fetches, m.WebhookRequests,
		m.PlanErrors, m.NodesWithPlanErrors,
	)
	return m
}

// ExecutorObserver counts steps and times them; it is an apply.Observer.
type ExecutorObserver struct {
	m *Metrics
	// DriverOf names a node's driver, for the latency label.
	driverOf func(node string) string

	mu      sync.Mutex
	started map[string]time.Time // node -> step start; guarded by mu
}

// NewExecutorObserver returns an observer feeding m.
func NewExecutorObserver(m *Metrics, driverOf func(node string) string) *ExecutorObserver {
	return &ExecutorObserver{m: m, driverOf: driverOf, started: map[string]time.Time{}}
}

// Event implements apply.Observer.
func (o *ExecutorObserver) Event(e apply.Event) {
	switch e.Kind {
	case apply.StepStarted:
		o.mu.Lock()
		o.started[e.Node] = e.Time
		o.mu.Unlock()
	case apply.StepFinished, apply.StepFailed, apply.StepRetry:
		result := map[apply.EventKind]string{apply.StepFinished: "ok", apply.StepFailed: "failed", apply.StepRetry: "retry"}[e.Kind]
		op := e.Op.String()
		o.m.Actions.WithLabelValues(op, result).Inc()
		o.mu.Lock()
		start, ok := o.started[e.Node]
		delete(o.started, e.Node)
		o.mu.Unlock()
		if ok && !e.Time.Before(start) {
			o.m.StepLatency.WithLabelValues(o.driverOf(e.Node), op).Observe(e.Time.Sub(start).Seconds())
		}
	}
}
