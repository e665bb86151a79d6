//go:build illumos

package zfd

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SetFlowControl sets the zfd log stream's flow control: on, the kernel
// stops the container's output while the logger's stream is full (nothing
// is lost, the application blocks); off, the tee into the log stream is
// best effort and drops when full. It is what mode=blocking means on
// illumos, where the zfd tee otherwise drops silently.
func SetFlowControl(f *os.File, on bool) error {
	v := 0
	if on {
		v = 1
	}
	// ioctl(fd, ZFD_MUX_FLOWCON, v), the value itself as the argument.
	if err := unix.IoctlSetInt(int(f.Fd()), zfdMuxFlowcon, v); err != nil {
		return fmt.Errorf("zfd flow control on %s: %w", f.Name(), err)
	}
	return nil
}
