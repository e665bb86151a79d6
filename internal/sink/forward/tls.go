package forward

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// ListenTLS starts a server on a TCP address that speaks the Forward
// protocol over TLS, as in_forward does with its <transport tls> section.
// A client whose handshake fails is counted in Errors. Start after Stop
// listens again without TLS: TLS servers are not restarted.
func ListenTLS(address string, cfg *tls.Config) (*Server, error) {
	s := newServer("tcp", "")
	ln, err := tls.Listen("tcp", address, cfg)
	if err != nil {
		return nil, fmt.Errorf("forward sink: listen tls %s: %w", address, err)
	}
	s.address = ln.Addr().String()
	s.serve(ln)
	return s, nil
}

// RequireClientCerts returns a copy of cfg that makes every client present
// a certificate signed by one of clientCAs, as in_forward does with
// client_cert_auth true in its <transport tls> section. A client without
// one, or with another, fails the handshake (counted in Errors, with the
// reason) and none of its events are taken. Pass the result to ListenTLS.
func RequireClientCerts(cfg *tls.Config, clientCAs *x509.CertPool) *tls.Config {
	c := cfg.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = clientCAs
	return c
}

// CertPoolFromFile reads the PEM certificates of a CA file into a pool,
// for RequireClientCerts.
func CertPoolFromFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("forward sink: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("forward sink: client CA %s: %w", path, err)
		}
		pool.AddCert(cert)
	}
	if pool.Equal(x509.NewCertPool()) {
		return nil, errors.New("forward sink: client CA " + path + ": no certificate")
	}
	return pool, nil
}

// TLSURL is the address as Docker's fluentd-address for TLS: tls://host:port.
func (s *Server) TLSURL() string { return "tls://" + s.address }
