package statussink

import (
	"sync"

	"metalsync.dev/metalsync/schema"
)

// Layout remembers the inventory of the revision being reconciled, which
// says where each node's status file belongs and where it is now. Its
// methods are Dir's SubDir and Was for a directory that follows revisions
// (`serve --local`); call Track with every revision the daemon loads.
type Layout struct {
	mu  sync.Mutex
	inv *schema.Inventory // guarded by mu
}

// Track makes inv the revision status is placed by.
func (l *Layout) Track(inv *schema.Inventory) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inv = inv
}

func (l *Layout) current() *schema.Inventory {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inv
}

// SubDir is the sub-directory of the status directory where node's status
// belongs ("" before the first revision).
func (l *Layout) SubDir(node string) string {
	if inv := l.current(); inv != nil {
		return inv.StatusSubDir(node)
	}
	return ""
}

// Was is where node's status file was when the revision was read ("" for
// none).
func (l *Layout) Was(node string) string {
	if inv := l.current(); inv != nil {
		return inv.StatusPath(node)
	}
	return ""
}
