package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// proxy is a TCP relay between the logger and its sink, for the faults
// the sink itself cannot make: a connection reset (RST, by closing with
// SO_LINGER 0) and a slow sink (the client-to-server direction limited to
// a byte rate).
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	rate  int // bytes per second client to server; 0 unlimited
	conns []*net.TCPConn
	wg    sync.WaitGroup
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// addr is the proxy's host:port.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setRate(bps int) {
	p.mu.Lock()
	p.rate = bps
	p.mu.Unlock()
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		cc, uc := c.(*net.TCPConn), up.(*net.TCPConn)
		p.mu.Lock()
		p.conns = append(p.conns, cc, uc)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pump(uc, cc, true); uc.Close(); cc.Close() }()
		go func() { defer p.wg.Done(); io.Copy(cc, uc); cc.Close(); uc.Close() }()
	}
}

// pump copies src to dst, at the proxy's rate when limited is set.
func (p *proxy) pump(dst, src *net.TCPConn, limited bool) {
	buf := make([]byte, 4096)
	start, sent := time.Now(), 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += n
			p.mu.Lock()
			rate := p.rate
			p.mu.Unlock()
			if limited && rate > 0 {
				if ahead := time.Duration(float64(sent)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			} else {
				start, sent = time.Now(), 0
			}
		}
		if err != nil {
			return
		}
	}
}

// reset aborts every connection with a RST on both sides and returns how
// many client connections it reset.
func (p *proxy) reset() int {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
	return len(conns) / 2
}

func (p *proxy) close() {
	p.ln.Close()
	p.reset()
	p.wg.Wait()
}
