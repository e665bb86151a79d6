//go:build !linux

package fluentd

import (
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// listenFluentdBridge listens on a unix socket in a fresh directory that
// only our user may enter (os.MkdirTemp makes it 0700). Without
// SO_PEERCRED, the directory is what keeps other users out.
func listenFluentdBridge() (ln *net.UnixListener, path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "dockerlogger-fluentd-tls-")
	if err != nil {
		return nil, "", nil, err
	}
	path = filepath.Join(dir, "s")
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return ln, path, func() { os.RemoveAll(dir) }, nil
}

// fluentdBridgePeerIsUs: the directory's mode is the check here.
func fluentdBridgePeerIsUs(net.Conn) error { return nil }

// fluentdBridgeAcceptQueued accepts, without waiting, every connection
// already queued on ln (its descriptor is non-blocking).
func fluentdBridgeAcceptQueued(ln *net.UnixListener) ([]net.Conn, error) {
	return acceptQueued(ln, func(fd int) (int, error) {
		nfd, _, err := unix.Accept(fd)
		if err == nil {
			unix.CloseOnExec(nfd)
		}
		return nfd, err
	})
}
