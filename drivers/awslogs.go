//go:build !illumos && !solaris

package drivers

import (
	"bytes"
	"runtime"
	"time"

	// awslogs does not build on illumos or solaris: Docker's dockerversion
	// package calls a kernel-version function that only exists elsewhere.
	_ "github.com/docker/docker/daemon/logger/awslogs"
)

// awslogsBatcher is the frame of the goroutine that makes Docker's awslogs
// driver's last PutLogEvents after Close.
var awslogsBatcher = []byte("daemon/logger/awslogs.(*logStream).collectBatch(")

// waitAfterClose waits for work a driver's Close leaves running. Docker's
// awslogs Close only closes its queue and returns; its batching goroutine
// then publishes the last batch, which an exit at that moment would lose.
// That goroutine is the only witness of the flush, so wait until it is
// gone. The worker's close-timeout bounds the wait.
func waitAfterClose(name string) {
	if name != "awslogs" {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if !bytes.Contains(buf[:n], awslogsBatcher) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
