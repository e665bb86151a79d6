package main

import (
	"time"

	"github.com/joyent/dockerlogger/internal/sink/forward"
	"github.com/joyent/dockerlogger/internal/sink/loki"
)

// netSink is a network sink a fault can take down, bring back and stall:
// the in-repo Forward server or a private rsyslogd (RELP, or plain TCP for
// the sink rsyslog-tcp).
type netSink interface {
	// Start listens (again) on the sink's address.
	Start() error
	// Stop takes the sink down: its listener and connections close.
	Stop()
	// Stall stops (true) or resumes (false) reading from connections.
	Stall(on bool)
	// URL is the address as the driver's log-opt takes it,
	// SCHEME://host:port.
	URL() string
	// Scheme is the URL's scheme (tcp, relp).
	Scheme() string
	// Addr is host:port, for the proxy.
	Addr() string
	// Messages waits up to d for at least atLeast messages and returns
	// the messages received, in arrival order.
	Messages(atLeast int, d time.Duration) ([]string, error)
	Close()
}

// urlAt is the driver's address for the sink at addr (a proxy's, or an
// address that does not resolve).
func urlAt(n netSink, addr string) string {
	if u, ok := n.(interface{ URLAt(string) string }); ok {
		return u.URLAt(addr)
	}
	return n.Scheme() + "://" + addr
}

// forwardSink is the in-repo Forward server as a netSink: a message is an
// event's "log" field.
type forwardSink struct{ *forward.Server }

func (forwardSink) Scheme() string { return "tcp" }

func (f forwardSink) Messages(atLeast int, d time.Duration) ([]string, error) {
	evs, _ := f.Wait(atLeast, d)
	msgs := make([]string, len(evs))
	for i, e := range evs {
		msgs[i] = e.Str("log")
	}
	return msgs, nil
}

// startSink starts a network sink (or only reserves its address, when
// reserve is set: a sink that is down at the logger's start).
func startSink(name, dir string, reserve bool) (netSink, error) {
	switch name {
	case "loki":
		open := loki.Listen
		if reserve {
			open = func(string) (*loki.Server, error) { return loki.Reserve() }
		}
		srv, err := open("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return lokiSink{srv}, nil
	case "otlp":
		return newOTLPSink(dir, reserve)
	}
	if name == "forward" {
		var srv *forward.Server
		var err error
		if reserve {
			srv, err = forward.Reserve()
		} else {
			srv, err = forward.Listen("tcp", "127.0.0.1:0")
		}
		if err != nil {
			return nil, err
		}
		return forwardSink{srv}, nil
	}
	r, err := newRsyslogSink(dir, name == "rsyslog")
	if err != nil {
		return nil, err
	}
	if !reserve {
		if err := r.Start(); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}
