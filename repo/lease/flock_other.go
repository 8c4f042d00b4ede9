//go:build !unix

package lease

import (
	"context"
	"errors"
)

func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	return nil, errors.New("lease files need flock(2), which this system lacks; use an inventory with a Git remote")
}
