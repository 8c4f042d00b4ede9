package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"metalsync.dev/metalsync/repo/localwatch"
	"metalsync.dev/metalsync/schema"
)

// statusArgs are the flags of `metalsync status`.
type statusArgs struct {
	dir    string
	output string // "" (table), wide or json
	labels []labelMatch
	watch  bool
}

// labelMatch is one key=value of -l; every one must match.
type labelMatch struct{ key, value string }

// labelFlag collects repeated -l flags; each may hold several
// comma-separated key=value pairs, as in kubectl.
type labelFlag struct{ m *[]labelMatch }

func (f labelFlag) String() string { return "" }

func (f labelFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(v, "=!") || strings.HasSuffix(k, "!") {
			return fmt.Errorf("bad label selector %q: want key=value", kv)
		}
		*f.m = append(*f.m, labelMatch{key: k, value: strings.TrimSpace(v)})
	}
	return nil
}

func parseStatus(args []string, env *Env) (statusArgs, int) {
	fs := newFlags("status", env)
	a := statusArgs{dir: "."}
	fs.Var(labelFlag{&a.labels}, "l", "only nodes with this label, key=value (repeatable; all must match)")
	fs.StringVar(&a.output, "o", "", "output: wide (more columns) or json")
	fs.BoolVar(&a.watch, "watch", false, "print again whenever a file in DIR changes (a daemon run with `serve --local DIR`, or a pull), until interrupted")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: metalsync status [-l key=value]... [-o wide|json] [--watch] [DIR]\n\nLists the nodes of the inventory in DIR (default .) with the status the\ndaemon recorded there: owner, provision state, power (desired/observed),\nfault or quarantine, last error and the age of the last observation.")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args); code >= 0 {
		return a, code
	}
	if fs.NArg() > 1 {
		fmt.Fprintln(env.Err, "metalsync status: at most one directory")
		return a, exitUsage
	}
	if fs.NArg() == 1 {
		a.dir = fs.Arg(0)
	}
	switch a.output {
	case "", "wide", "json":
	default:
		fmt.Fprintf(env.Err, "metalsync status: unknown -o %q (wide or json)\n", a.output)
		return a, exitUsage
	}
	return a, -1
}

func runStatus(ctx context.Context, args []string, env *Env) int {
	a, code := parseStatus(args, env)
	if code >= 0 {
		return code
	}
	if !a.watch {
		return showStatus(a, env)
	}
	return watchStatus(ctx, a, env)
}

// watchStatus shows the status, then again after every settled burst of
// changes in the directory, until ctx ends. An invalid revision is
// reported and waited out.
func watchStatus(ctx context.Context, a statusArgs, env *Env) int {
	w, err := localwatch.New(localwatch.Config{Dir: a.dir})
	if err != nil {
		fmt.Fprintf(env.Err, "metalsync status: watch: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	showStatus(a, env)
	for {
		select {
		case <-ctx.Done():
			<-done
			return exitOK
		case err := <-done:
			fmt.Fprintf(env.Err, "metalsync status: watch: %v\n", err)
			return exitError
		case <-w.C():
			fmt.Fprintln(env.Out)
			showStatus(a, env)
		}
	}
}

// showStatus loads the inventory in a.dir and prints its status once.
func showStatus(a statusArgs, env *Env) int {
	inv, diags := loadInventory(a.dir, env)
	if len(diags) > 0 {
		fmt.Fprint(env.Err, diags.String())
	}
	if diags.HasErrors() {
		fmt.Fprintln(env.Err, "metalsync status: the inventory is invalid (run `metalsync validate`)")
		return exitError
	}
	rows := statusRows(inv, a.labels, time.Now())
	switch a.output {
	case "json":
		enc := json.NewEncoder(env.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(statusReport{FormatVersion: statusFormatVersion, Nodes: rows}); err != nil {
			fmt.Fprintf(env.Err, "metalsync status: %v\n", err)
			return exitError
		}
	default:
		if len(rows) == 0 {
			fmt.Fprintln(env.Err, "No nodes.")
			return exitOK
		}
		writeStatusTable(env.Out, rows, a.output == "wide")
	}
	return exitOK
}

// statusFormatVersion versions the JSON form of `status -o json`.
const statusFormatVersion = "1"

// statusReport is the JSON form of `metalsync status -o json`.
type statusReport struct {
	FormatVersion string      `json:"format_version"`
	Nodes         []statusRow `json:"nodes"`
}

// statusRow is one node: its spec joined with its recorded status.
type statusRow struct {
	Node           string            `json:"node"`
	Owner          string            `json:"owner"`
	Lessee         string            `json:"lessee,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ProvisionState string            `json:"provisionState,omitempty"` // observed
	Target         string            `json:"target,omitempty"`         // being worked towards
	DesiredState   string            `json:"desiredState"`
	DesiredPower   string            `json:"desiredPower,omitempty"`
	ObservedPower  string            `json:"observedPower,omitempty"`
	Quarantine     string            `json:"quarantine,omitempty"` // spec.quarantine's reason
	Retired        string            `json:"retired,omitempty"`    // spec.retired's reason
	Fault          *schema.Fault     `json:"fault,omitempty"`
	LastError      string            `json:"lastError,omitempty"`
	PlanError      string            `json:"planError,omitempty"`
	Updated        string            `json:"updated,omitempty"`
	AgeSeconds     *int64            `json:"ageSeconds,omitempty"`
	Driver         string            `json:"driver,omitempty"`
	BMCHost        string            `json:"bmcHost,omitempty"`
	Operation      *schema.Operation `json:"operation,omitempty"`
	Commit         string            `json:"commit,omitempty"`
	HasStatus      bool              `json:"hasStatus"`
}

// statusRows joins every node of inv matching all of labels with its
// status, in node name order; ages are relative to now.
func statusRows(inv *schema.Inventory, labels []labelMatch, now time.Time) []statusRow {
	rows := []statusRow{}
	for _, n := range inv.Nodes {
		if !matchLabels(n.Spec.Labels, labels) {
			continue
		}
		r := statusRow{
			Node:         n.Name(),
			Owner:        n.Spec.Owner,
			Lessee:       n.Spec.Lessee,
			Labels:       n.Spec.Labels,
			DesiredState: n.Spec.Provision.State,
			DesiredPower: n.Spec.Power,
		}
		if q := n.Spec.Quarantine; q != nil {
			r.Quarantine = q.Reason
		}
		if rt := n.Spec.Retired; rt != nil {
			r.Retired = rt.Reason
		}
		if addr, err := schema.ParseBMCAddress(n.Spec.BMC.Address); err == nil {
			r.Driver, r.BMCHost = addr.Driver, addr.Host()
		}
		if st := inv.Status[n.Name()]; st != nil {
			s := st.Status
			r.HasStatus = true
			r.ProvisionState, r.Target = s.ProvisionState, s.Target
			r.ObservedPower = s.Power
			r.Fault = s.Fault
			r.LastError, r.PlanError = s.LastError, s.PlanError
			r.Operation = s.Operation
			r.Commit = s.Commit
			r.Updated = s.Updated
			if t, err := time.Parse(time.RFC3339, s.Updated); err == nil {
				age := int64(now.Sub(t) / time.Second)
				r.AgeSeconds = &age
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func matchLabels(have map[string]string, want []labelMatch) bool {
	for _, m := range want {
		if v, ok := have[m.key]; !ok || v != m.value {
			return false
		}
	}
	return true
}

// maxErrorWidth bounds the LAST ERROR column of the narrow table; -o wide
// and -o json give the whole message.
const maxErrorWidth = 60

func writeStatusTable(w io.Writer, rows []statusRow, wide bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "NODE\tOWNER\tSTATE\tPOWER\tFAULT\tLAST ERROR\tAGE"
	if wide {
		head += "\tDRIVER\tBMC\tTARGET\tOPERATION\tCOMMIT"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		errText := oneLine(r.LastError)
		if errText == "" && r.PlanError != "" {
			errText = "plan: " + oneLine(r.PlanError)
		}
		if !wide && len(errText) > maxErrorWidth {
			errText = errText[:maxErrorWidth-3] + "..."
		}
		cols := []string{
			r.Node,
			ownerText(r),
			stateText(r),
			orDash(r.DesiredPower) + "/" + orDash(r.ObservedPower),
			faultText(r),
			orDash(errText),
			ageText(r.AgeSeconds),
		}
		if wide {
			cols = append(cols, orDash(r.Driver), orDash(r.BMCHost), orDash(r.Target), operationText(r.Operation), orDash(shortCommit(r.Commit)))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
}

func ownerText(r statusRow) string {
	if r.Lessee != "" {
		return r.Owner + "/" + r.Lessee
	}
	return r.Owner
}

// stateText is the observed provision state, with the state being worked
// towards when busy, or the desired state before any status was recorded.
func stateText(r statusRow) string {
	switch {
	case !r.HasStatus || r.ProvisionState == "":
		return "(" + r.DesiredState + ")"
	case r.Target != "" && r.Target != r.ProvisionState:
		return r.ProvisionState + "->" + r.Target
	}
	return r.ProvisionState
}

func faultText(r statusRow) string {
	var parts []string
	if r.Retired != "" {
		parts = append(parts, "retired")
	}
	if r.Quarantine != "" {
		parts = append(parts, "quarantined")
	}
	if r.Fault != nil {
		parts = append(parts, fmt.Sprintf("fault(%d)", r.Fault.Failures))
	}
	return orDash(strings.Join(parts, ","))
}

func operationText(op *schema.Operation) string {
	if op == nil {
		return "-"
	}
	if len(op.Steps) == 0 {
		return op.Kind
	}
	s := fmt.Sprintf("%s %d/%d", op.Kind, op.Step+1, len(op.Steps))
	if op.Step >= 0 && op.Step < len(op.Steps) {
		s += " " + op.Steps[op.Step]
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ageText is a duration the way kubectl prints ages: 45s, 12m, 5h, 3d.
func ageText(secs *int64) string {
	if secs == nil {
		return "-"
	}
	d := time.Duration(*secs) * time.Second
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int64(d/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
}
