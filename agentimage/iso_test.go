package agentimage

import (
	"strings"
	"testing"
)

func TestParseReportLBA(t *testing.T) {
	const p = SlotMetaData
	line := func(lba, size string) string {
		return "File data lba:  0 ,  " + lba + " ,  32 ,  " + size + " , '" + p + "'\n"
	}
	tests := []struct {
		name    string
		out     string
		want    Slot
		wantErr string
	}{
		{name: "one extent", out: "Report layout: xt , Startlba , Blocks , Filesize , ISO image path\n" + line("3460", "65536"), want: Slot{Offset: 3460 * 2048, Length: SlotSize}},
		{name: "missing", out: "xorriso : NOTE : nothing\n", wantErr: "not in the image"},
		{name: "two extents", out: line("1", "65536") + line("2", "65536"), wantErr: "2 extents"},
		{name: "wrong size", out: line("1", "100"), wantErr: "size 100"},
		{name: "other file", out: "File data lba:  0 , 1 , 32 , 65536 , '/x'\n", wantErr: "want"},
		{name: "garbage numbers", out: line("x", "65536"), wantErr: "malformed"},
		{name: "negative", out: line("-4", "65536"), wantErr: "malformed"},
		{name: "huge block", out: line("9223372036854775807", "65536"), wantErr: "out of range"},
		{name: "short line", out: "File data lba: 0 , 1\n", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseReportLBA(tt.out, p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseReportLBA: xorriso's output never panics the parser, and an
// accepted slot is a SlotSize extent at a block boundary.
func FuzzParseReportLBA(f *testing.F) {
	f.Add("File data lba:  0 ,     3460 ,       32 ,    65536 , '" + SlotMetaData + "'\n")
	f.Add("File data lba: , , , ,\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		s, err := parseReportLBA(out, SlotMetaData)
		if err == nil && (s.Length != SlotSize || s.Offset%2048 != 0 || s.Offset < 0) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
