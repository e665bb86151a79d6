package fluentd

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listenFluentdBridge listens on an abstract unix socket with a random
// name: no file to protect, and nothing left behind by a killed process.
// Other processes in the network namespace could connect to it, so
// fluentdBridgePeerIsUs checks every connection.
func listenFluentdBridge() (ln *net.UnixListener, path string, cleanup func(), err error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, "", nil, err
	}
	// A leading @ is Go's spelling of the abstract namespace.
	path = "@dockerlogger-fluentd-tls-" + hex.EncodeToString(r[:])
	ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, "", nil, err
	}
	return ln, path, func() {}, nil
}

// fluentdBridgePeerIsUs accepts only a connection made by this process
// (fluent-logger-golang's), by the kernel's record of the peer's pid.
func fluentdBridgePeerIsUs(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("not a unix socket: %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if credErr != nil {
		return fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	if int(cred.Pid) != os.Getpid() {
		return fmt.Errorf("peer is pid %d (uid %d), not this process", cred.Pid, cred.Uid)
	}
	return nil
}

// fluentdBridgeAcceptQueued accepts, without waiting, every connection
// already queued on ln (its descriptor is non-blocking).
func fluentdBridgeAcceptQueued(ln *net.UnixListener) ([]net.Conn, error) {
	return acceptQueued(ln, func(fd int) (int, error) {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		return nfd, err
	})
}
