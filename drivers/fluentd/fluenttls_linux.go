package fluentd

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// bridgeGate is the bridge's abstract unix socket, with a random name: no
// file to protect, and nothing left behind by a killed process. Other
// processes in the network namespace could connect to it, so
// fluentdBridgePeerIsUs checks every connection.
//
// Shut, it keeps its name (nobody else can take it and receive our
// connection) but its listen queue, one or two long, is full of
// connections of our own (plugs): a connect fails with EAGAIN, as a
// connect to a server that is down fails. Open closes the plugs; accepted
// then, each reads as an empty connection already closed, which the
// bridge drops (fluentdBridgeConnIsEmpty).
type bridgeGate struct {
	ln   *net.UnixListener
	path string

	mu    sync.Mutex
	plugs []int      // descriptors of our plugs while shut
	taken []net.Conn // queued before the plugs, taken off by open: accepted first
	woken bool       // wake was called: every accept returns at once
}

// bridgeGateMaxPlugs bounds the plugs: the queue holds one or two.
const bridgeGateMaxPlugs = 8

// listenBridgeGate listens, shut.
func listenBridgeGate() (*bridgeGate, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	// A leading @ is Go's (and x/sys's) spelling of the abstract namespace.
	path := "@dockerlogger-fluentd-tls-" + hex.EncodeToString(r[:])
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	g := &bridgeGate{ln: ln, path: path}
	raw, err := ln.SyscallConn()
	if err == nil {
		var lerr error
		err = raw.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), 1) })
		if err == nil {
			err = lerr
		}
	}
	if err == nil {
		err = g.shut()
	}
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// shut fills the listen queue with plugs.
func (g *bridgeGate) shut() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.plugs) > 0 {
		return nil
	}
	for len(g.plugs) < bridgeGateMaxPlugs {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("shut the socket: %w", err)
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: g.path})
		if errors.Is(err, unix.EAGAIN) {
			unix.Close(fd)
			return nil
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("shut the socket: %w", err)
		}
		g.plugs = append(g.plugs, fd)
	}
	return fmt.Errorf("shut the socket: its queue took %d connections", bridgeGateMaxPlugs)
}

// open lets connections in.
func (g *bridgeGate) open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.plugs) > 0 {
		g.unplug()
		conns, err := g.acceptQueued()
		for _, c := range conns {
			if fluentdBridgeConnIsEmpty(c) { // a plug
				c.Close()
				continue
			}
			g.taken = append(g.taken, c)
		}
		if err != nil {
			return fmt.Errorf("open the socket: %w", err)
		}
	}
	if !g.woken {
		return g.ln.SetDeadline(time.Time{})
	}
	return nil
}

func (g *bridgeGate) acceptQueued() ([]net.Conn, error) {
	return acceptQueued(g.ln, func(fd int) (int, error) {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		return nfd, err
	})
}

func (g *bridgeGate) unplug() {
	for _, fd := range g.plugs {
		unix.Close(fd)
	}
	g.plugs = nil
}

// accept waits for the next connection, until interrupt, wake or close.
func (g *bridgeGate) accept() (net.Conn, error) {
	g.mu.Lock()
	if len(g.taken) > 0 {
		c := g.taken[0]
		g.taken = g.taken[1:]
		g.mu.Unlock()
		return c, nil
	}
	g.mu.Unlock()
	return g.ln.Accept()
}

// interrupt ends the accept under way (and any until the next open).
func (g *bridgeGate) interrupt() { g.ln.SetDeadline(time.Now()) }

// wake ends every accept, now and later: the bridge is closing.
func (g *bridgeGate) wake() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.woken = true
	g.ln.SetDeadline(time.Now())
}

// drain stops listening and returns the connections still queued, in
// order: connect returned to their maker as soon as they were queued.
func (g *bridgeGate) drain() ([]net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.unplug()
	conns, err := g.acceptQueued()
	conns = append(g.taken, conns...)
	g.taken = nil
	g.ln.Close()
	return conns, err
}

// close stops listening.
func (g *bridgeGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.unplug()
	for _, c := range g.taken {
		c.Close()
	}
	g.taken = nil
	g.ln.Close()
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
