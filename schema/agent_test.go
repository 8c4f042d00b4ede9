package schema

import "testing"

func TestImageCacheBytes(t *testing.T) {
	tests := []struct {
		size string
		want int64
	}{
		{"", DefaultImageCacheBytes},
		{"512MiB", 512 << 20},
		{"50GiB", 50 << 30},
		{"2TiB", 2 << 40},
		{"999999TiB", 999999 << 40},
		// The schema refuses these; read as the default all the same.
		{"50G", DefaultImageCacheBytes},
		{"0GiB", DefaultImageCacheBytes},
		{"-1GiB", DefaultImageCacheBytes},
		{"9999999999TiB", DefaultImageCacheBytes},
	}
	for _, tt := range tests {
		if got := (&AgentSettings{ImageCacheSize: tt.size}).ImageCacheBytes(); got != tt.want {
			t.Errorf("ImageCacheBytes(%q) = %d, want %d", tt.size, got, tt.want)
		}
	}
	if got := (*AgentSettings)(nil).ImageCacheBytes(); got != DefaultImageCacheBytes {
		t.Errorf("no agent settings: %d, want the default", got)
	}
}

func FuzzImageCacheBytes(f *testing.F) {
	for _, s := range []string{"50GiB", "1MiB", "999999TiB", "", "GiB", "+5GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := (&AgentSettings{ImageCacheSize: s}).ImageCacheBytes(); n <= 0 {
			t.Errorf("ImageCacheBytes(%q) = %d", s, n)
		}
	})
}
