// Package otelcol builds and runs the OpenTelemetry Collector's OTLP
// receiver of test/otelcol (a module of its own, so that nothing of the
// Collector enters the product's go.mod) for the end-to-end tests and the
// benchmarks. The binary is built once per source into a cache directory
// ($XDG_CACHE_HOME or ~/.cache, dockerlogger-test/) and reused.
//
// It must never import dockerlogger's own packages: it stands for a real
// collector and knows nothing of the client under test.
package otelcol

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Binary returns the collector built from the module in src (the path of
// test/otelcol), building it if the cache has none for these sources.
func Binary(src string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "dockerlogger-test")
	path := filepath.Join(dir, "otelcol-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", src, err, out)
	}
	return path, os.Rename(tmp, path)
}

// Collector is one collector process, listening on Addr and writing every
// request it accepts to Out as a line of OTLP JSON.
type Collector struct {
	Addr string
	Out  string
	bin  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr bytes.Buffer
}

// New prepares a collector on a free loopback address writing to out,
// not started; tls is the server's certificate, key and the CA of client
// certificates, or nothing.
func New(bin, out string, tls ...string) (*Collector, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &Collector{Addr: addr, Out: out, bin: bin, args: []string{"-endpoint", addr, "-out", out}}
	if len(tls) == 3 {
		c.args = append(c.args, "-tls-cert", tls[0], "-tls-key", tls[1], "-client-ca", tls[2])
	}
	return c, nil
}

// Start runs the collector and returns once it accepts connections.
func (c *Collector) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	cmd := exec.Command(c.bin, c.args...)
	c.stderr.Reset()
	cmd.Stderr = &c.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
	// Nothing to be told by: poll the port.
	for end := time.Now().Add(20 * time.Second); ; {
		conn, err := net.Dial("tcp", c.Addr)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-done:
			c.cmd = nil
			return fmt.Errorf("collector exited: %s", c.stderr.String())
		default:
		}
		if time.Now().After(end) {
			return fmt.Errorf("collector not listening on %s after 20 s", c.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the collector (a crash: what it wrote per request stays).
func (c *Collector) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
	c.cmd = nil
}

// Pid is the running collector's process id, 0 when stopped.
func (c *Collector) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}
