package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/google/go-cmp/cmp"

	"metalsync.dev/metalsync/drivers"
)

// kinds names the sentinels err matches.
func kinds(err error) []string {
	var ks []string
	for _, k := range []struct {
		name string
		err  error
	}{
		{"auth", drivers.ErrAuth},
		{"unsupported", drivers.ErrUnsupported},
		{"unreachable", drivers.ErrUnreachable},
		{"canceled", context.Canceled},
	} {
		if errors.Is(err, k.err) {
			ks = append(ks, k.name)
		}
	}
	return ks
}

func TestWrapClassifies(t *testing.T) {
	b := &BMC{host: "10.0.0.5:623", suite: 3}
	// go-ipmi's Connect flattens its step errors with %v.
	flat := func(err error) error { return fmt.Errorf("connect20 failed, errs: \n%v", err) }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want []string
	}{
		{"rakp", nil, fmt.Errorf("rakp2: %w", client.ErrRAKPAuthentication), []string{"auth"}},
		{"rakp-flat", nil, flat(fmt.Errorf("rakp2: %w", client.ErrRAKPAuthentication)), []string{"auth"}},
		{"unauthorized-name", nil, types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName), []string{"auth"}},
		{"unauthorized-name-flat", nil, flat(types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName)), []string{"auth"}},
		{"privilege", nil, types.NewResponseError(types.CodeInsufficientPrivilege, "x"), []string{"auth"}},
		{"no-suite", nil, types.NewRmcpStatusError(types.RmcpStatusCodeNoCipherSuiteMatch), []string{"unsupported"}},
		{"no-suite-flat", nil, flat(types.NewRmcpStatusError(types.RmcpStatusCodeInvalidAuthAlg)), []string{"unsupported"}},
		{"ipmi-sim-suite", nil, flat(fmt.Errorf("cmd: RMCP+ Open Session failed with cipher suite id (17), err: %w", types.ErrUnpackedDataTooShortWith(2, 8))), []string{"unsupported"}},
		{"invalid-command", nil, types.NewResponseError(types.CodeInvalidCommand, "x"), []string{"unsupported"}},
		{"invalid-field", nil, types.NewResponseError(types.CodeRequestDataFieldInvalid, "x"), []string{"unsupported"}},
		{"busy", nil, types.NewResponseError(types.CodeNodeBusy, "x"), nil},
		{"net", nil, &net.OpError{Op: "read", Err: errors.New("boom")}, []string{"unreachable"}},
		{"refused", nil, fmt.Errorf("read: %w", syscall.ECONNREFUSED), []string{"unreachable"}},
		{"no-answer", nil, fmt.Errorf("%w within 1s: x", errNoAnswer), []string{"unreachable"}},
		{"caller-cancelled", cancelled, errors.New("boom"), []string{"canceled"}},
		{"other", nil, errors.New("boom"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := b.wrap(ctx, "power on", tt.err)
			if diff := cmp.Diff(tt.want, kinds(err)); diff != "" {
				t.Errorf("wrap(%v) = %v (-want +got):\n%s", tt.err, err, diff)
			}
			if !strings.HasPrefix(err.Error(), "ipmi 10.0.0.5:623: power on: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("wrap text %q", err)
			}
		})
	}
}
