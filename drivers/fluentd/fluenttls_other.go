//go:build !linux

package fluentd

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bridgeGate is the bridge's unix socket, in a fresh directory that only
// our user may enter (os.MkdirTemp makes it 0700): without SO_PEERCRED,
// the directory is what keeps other users out. Shut, nothing listens
// there, so a connect fails as a connect to a server that is down fails;
// the directory keeps the name ours meanwhile.
type bridgeGate struct {
	dir, path string

	mu    sync.Mutex
	ln    *net.UnixListener // nil while shut
	woken bool              // wake was called: every accept returns at once
}

// listenBridgeGate makes the directory, shut.
func listenBridgeGate() (*bridgeGate, error) {
	dir, err := os.MkdirTemp("", "dockerlogger-fluentd-tls-")
	if err != nil {
		return nil, err
	}
	return &bridgeGate{dir: dir, path: filepath.Join(dir, "s")}, nil
}

// shut stops listening.
func (g *bridgeGate) shut() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close() // removes the socket file
		g.ln = nil
	}
	return nil
}

// open listens.
func (g *bridgeGate) open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: g.path, Net: "unix"})
		if err != nil {
			return err
		}
		g.ln = ln
	}
	if g.woken {
		return g.ln.SetDeadline(time.Now())
	}
	return g.ln.SetDeadline(time.Time{})
}

// accept waits for the next connection, until interrupt, wake or close.
func (g *bridgeGate) accept() (net.Conn, error) {
	g.mu.Lock()
	ln := g.ln
	g.mu.Unlock()
	if ln == nil {
		return nil, net.ErrClosed
	}
	return ln.Accept()
}

// interrupt ends the accept under way (and any until the next open).
func (g *bridgeGate) interrupt() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.SetDeadline(time.Now())
	}
}

// wake ends every accept, now and later: the bridge is closing.
func (g *bridgeGate) wake() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.woken = true
	if g.ln != nil {
		g.ln.SetDeadline(time.Now())
	}
}

// drain stops listening and returns the connections still queued, in
// order: connect returned to their maker as soon as they were queued.
func (g *bridgeGate) drain() ([]net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		return nil, nil
	}
	conns, err := acceptQueued(g.ln, func(fd int) (int, error) {
		nfd, _, err := unix.Accept(fd)
		if err == nil {
			unix.CloseOnExec(nfd)
		}
		return nfd, err
	})
	g.ln.Close()
	g.ln = nil
	return conns, err
}

// close stops listening and removes the directory.
func (g *bridgeGate) close() {
	g.shut()
	os.RemoveAll(g.dir)
}

// fluentdBridgePeerIsUs: the directory's mode is the check here.
func fluentdBridgePeerIsUs(net.Conn) error { return nil }
