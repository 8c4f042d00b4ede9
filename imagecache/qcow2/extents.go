package qcow2

import (
	"iter"
)

// Extent is a run of the virtual disk that holds data. Everything outside
// the extents an image reports reads as zeros.
type Extent struct {
	Offset int64
	Length int64
}

// Extents yields the image's data extents in order, merging adjacent
// clusters; unallocated and zero clusters are left out. It reads every L2
// table once and stops at the first error, which it yields.
func (img *Image) Extents() iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		var (
			cur   Extent
			table []uint64
			raw   []byte
		)
		for l1i, tableOff := range img.l1 {
			if tableOff == 0 {
				continue
			}
			if table == nil {
				table = make([]uint64, img.l2Entries)
				raw = make([]byte, img.clusterSize)
			}
			if err := img.loadL2(table, raw, tableOff); err != nil {
				yield(Extent{}, err)
				return
			}
			for i, e := range table {
				m, _ := img.decodeL2(e, tableOff, i) // validated by loadL2
				if m.kind != kindData && m.kind != kindCompressed {
					continue
				}
				v := (int64(l1i)*img.l2Entries + int64(i)) * img.clusterSize
				if v >= img.h.virtualSize {
					break
				}
				n := min(img.clusterSize, img.h.virtualSize-v)
				if cur.Length > 0 && cur.Offset+cur.Length == v {
					cur.Length += n
					continue
				}
				if cur.Length > 0 && !yield(cur, nil) {
					return
				}
				cur = Extent{Offset: v, Length: n}
			}
		}
		if cur.Length > 0 {
			yield(cur, nil)
		}
	}
}
