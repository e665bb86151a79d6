package test

// The OpenTelemetry Collector for the otlp driver's tests: test/otelcol is
// a module of its own (so nothing of the Collector enters the product's
// go.mod) that runs the Collector's own OTLP receiver and writes what it
// accepts as OTLP JSON lines. It is built once per source into a cache
// directory ($XDG_CACHE_HOME or ~/.cache, dockerlogger-test/) and reused.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	otelcolOnce sync.Once
	otelcolPath string
	otelcolErr  string
)

// otelcolBinary builds test/otelcol, or finds it built for the same
// sources.
func otelcolBinary(t testing.TB) string {
	t.Helper()
	otelcolOnce.Do(func() {
		h := sha256.New()
		for _, f := range []string{"otelcol/go.mod", "otelcol/go.sum", "otelcol/main.go"} {
			b, err := os.ReadFile(f)
			if err != nil {
				otelcolErr = err.Error()
				return
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
			otelcolPath = path
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			otelcolErr = err.Error()
			return
		}
		tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
		cmd := exec.Command("go", "build", "-o", tmp, ".")
		cmd.Dir = "otelcol"
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			otelcolErr = "build test/otelcol: " + err.Error() + ": " + string(out)
			return
		}
		if err := os.Rename(tmp, path); err != nil {
			otelcolErr = err.Error()
			return
		}
		otelcolPath = path
	})
	if otelcolErr != "" {
		t.Fatal(otelcolErr)
	}
	return otelcolPath
}

// otelcol is one running collector.
type otelcol struct {
	t        testing.TB
	addr     string
	out      string
	args     []string
	cmd      *exec.Cmd
	stderr   *syncBuffer
	finished chan struct{}
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newOtelcol prepares a collector on a free address, not started; tls
// is cert, key and client CA, or nothing.
func newOtelcol(t testing.TB, tls ...string) *otelcol {
	t.Helper()
	c := &otelcol{t: t, addr: freeAddr(t), out: filepath.Join(t.TempDir(), "logs.jsonl")}
	c.args = []string{"-endpoint", c.addr, "-out", c.out}
	if len(tls) == 3 {
		c.args = append(c.args, "-tls-cert", tls[0], "-tls-key", tls[1], "-client-ca", tls[2])
	}
	t.Cleanup(c.Stop)
	return c
}

// startOtelcol starts a collector and waits until it listens.
func startOtelcol(t testing.TB, tls ...string) *otelcol {
	c := newOtelcol(t, tls...)
	c.Start()
	return c
}

// Start runs the collector and waits until it accepts connections.
func (c *otelcol) Start() {
	c.t.Helper()
	c.cmd = exec.Command(otelcolBinary(c.t), c.args...)
	c.stderr = &syncBuffer{}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.finished = make(chan struct{})
	go func() { c.cmd.Wait(); close(c.finished) }()
	Eventually(c.t, 20*time.Second, "the collector to listen", func() bool {
		conn, err := net.Dial("tcp", c.addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// Stop ends the collector (SIGKILL: a crash, nothing flushed beyond what
// it wrote per request).
func (c *otelcol) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.finished
	c.cmd = nil
}

// URL is the collector's base URL.
func (c *otelcol) URL(scheme string) string { return scheme + "://" + c.addr }

// otlpValue is an AnyValue in OTLP JSON.
type otlpValue struct {
	String *string `json:"stringValue"`
	Bytes  []byte  `json:"bytesValue"`
	Bool   *bool   `json:"boolValue"`
	Int    *string `json:"intValue"`
	Array  *struct {
		Values []otlpValue `json:"values"`
	} `json:"arrayValue"`
}

type otlpKV struct {
	Key   string    `json:"key"`
	Value otlpValue `json:"value"`
}

// otlpRecord is one received LogRecord with its resource's attributes.
type otlpRecord struct {
	Resource       map[string]string
	Time           string    `json:"timeUnixNano"`
	Observed       string    `json:"observedTimeUnixNano"`
	SeverityNumber int       `json:"severityNumber"`
	SeverityText   string    `json:"severityText"`
	Body           otlpValue `json:"body"`
	Attributes     []otlpKV  `json:"attributes"`
}

// attr returns a record's attribute as text.
func (r otlpRecord) attr(k string) string {
	for _, a := range r.Attributes {
		if a.Key == k {
			return a.Value.text()
		}
	}
	return ""
}

func (v otlpValue) text() string {
	switch {
	case v.String != nil:
		return *v.String
	case v.Bytes != nil:
		return string(v.Bytes)
	case v.Bool != nil:
		return strconv.FormatBool(*v.Bool)
	case v.Int != nil:
		return *v.Int
	case v.Array != nil && len(v.Array.Values) > 0:
		return v.Array.Values[0].text()
	}
	return ""
}

// Records returns every record the collector wrote, in order.
func (c *otelcol) Records() []otlpRecord {
	c.t.Helper()
	f, err := os.Open(c.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	var recs []otlpRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var req struct {
			ResourceLogs []struct {
				Resource struct {
					Attributes []otlpKV `json:"attributes"`
				} `json:"resource"`
				ScopeLogs []struct {
					LogRecords []otlpRecord `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			// The last line may be being written.
			break
		}
		for _, rl := range req.ResourceLogs {
			res := map[string]string{}
			for _, a := range rl.Resource.Attributes {
				res[a.Key] = a.Value.text()
			}
			for _, sl := range rl.ScopeLogs {
				for _, r := range sl.LogRecords {
					r.Resource = res
					recs = append(recs, r)
				}
			}
		}
	}
	return recs
}

// Wait waits until the collector has n records.
func (c *otelcol) Wait(n int, d time.Duration) []otlpRecord {
	c.t.Helper()
	var recs []otlpRecord
	Eventually(c.t, d, strconv.Itoa(n)+" records at the collector", func() bool {
		recs = c.Records()
		return len(recs) >= n
	})
	return recs
}
