package forward

import (
	"crypto/tls"
	"fmt"
	"net"
)

// ListenTLS starts a server on a TCP address that speaks the Forward
// protocol over TLS, as in_forward does with its <transport tls> section.
// A client whose handshake fails is counted in Errors. Start after Stop
// listens again without TLS: TLS servers are not restarted.
func ListenTLS(address string, cfg *tls.Config) (*Server, error) {
	gate := make(chan struct{})
	close(gate)
	s := &Server{network: "tcp", conns: map[net.Conn]chan struct{}{}, changed: make(chan struct{}), gate: gate}
	ln, err := tls.Listen("tcp", address, cfg)
	if err != nil {
		return nil, fmt.Errorf("forward sink: listen tls %s: %w", address, err)
	}
	s.address = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// TLSURL is the address as Docker's fluentd-address for TLS: tls://host:port.
func (s *Server) TLSURL() string { return "tls://" + s.address }
