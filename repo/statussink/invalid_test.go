package statussink

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/schema"
)

type fileCall struct {
	Name    string
	Deleted bool
	Summary string
}

type recordingFiles struct {
	calls []fileCall
	data  []byte // of the last write
}

func (r *recordingFiles) UpdateFile(name string, data []byte, summary string) error {
	r.calls = append(r.calls, fileCall{Name: name, Deleted: data == nil, Summary: summary})
	r.data = data
	return nil
}

// TestInvalidReport: a refused revision writes the report; the first valid
// revision after it (or at start) removes it, later ones ask for nothing.
func TestInvalidReport(t *testing.T) {
	rec := &recordingFiles{}
	r := &InvalidReport{Files: rec}
	diags := schema.Diagnostics{{File: "nodes/a.yaml", Line: 1, Col: 1, Severity: schema.SevError, Code: schema.CodeSchema, Message: "bad"}}
	r.ReportInvalid("0123456789abcdef", nil)
	r.ReportInvalid("0123456789abcdef", nil)
	r.ReportInvalid("fedcba9876543210", diags)
	if !strings.Contains(string(rec.data), "refused revision fedcba9876543210") || !strings.Contains(string(rec.data), "nodes/a.yaml:1:1") {
		t.Errorf("report:\n%s", rec.data)
	}
	r.ReportInvalid("1111", nil)
	r.ReportInvalid("2222", nil)
	want := []fileCall{
		{Name: InvalidReportFile, Deleted: true, Summary: "inventory valid again"},
		{Name: InvalidReportFile, Summary: "inventory fedcba987654 invalid: 1 errors"},
		{Name: InvalidReportFile, Deleted: true, Summary: "inventory valid again"},
	}
	if d := cmp.Diff(want, rec.calls); d != "" {
		t.Errorf("updates (-want +got):\n%s", d)
	}
}
