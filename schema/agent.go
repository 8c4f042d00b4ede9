package schema

import (
	"strconv"
	"strings"
)

// DefaultImageCacheBytes is the image cache's bound when the site sets
// none: room for a few dozen OS images.
const DefaultImageCacheBytes int64 = 50 << 30

// ImageCacheBytes is ImageCacheSize in bytes, or DefaultImageCacheBytes
// when it is not set. The schema allows at most six digits before MiB,
// GiB or TiB, which cannot overflow; anything else reads as the default.
func (a *AgentSettings) ImageCacheBytes() int64 {
	if a == nil {
		return DefaultImageCacheBytes
	}
	for unit, shift := range map[string]uint{"MiB": 20, "GiB": 30, "TiB": 40} {
		num, ok := strings.CutSuffix(a.ImageCacheSize, unit)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n <= 0 || n > 999999 {
			break
		}
		return n << shift
	}
	return DefaultImageCacheBytes
}
