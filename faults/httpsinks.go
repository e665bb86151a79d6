package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/joyent/dockerlogger/internal/otelcol"
	"github.com/joyent/dockerlogger/internal/sink/loki"
)

// otelcolSrc is the collector's module (the -otelcol flag).
var otelcolSrc = "test/otelcol"

// lokiSink is the in-repo Loki push API as a netSink: a message is an
// entry's line.
type lokiSink struct{ *loki.Server }

func (lokiSink) Scheme() string { return "http" }

func (l lokiSink) Addr() string {
	return strings.TrimSuffix(strings.TrimPrefix(l.URL(), "http://"), "/loki/api/v1/push")
}

// URLAt is the push URL on another host:port (the proxy's).
func (lokiSink) URLAt(addr string) string { return "http://" + addr + "/loki/api/v1/push" }

func (l lokiSink) Messages(atLeast int, d time.Duration) ([]string, error) {
	es, _ := l.Wait(atLeast, d)
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Line
	}
	return msgs, nil
}

// otlpSink is the OpenTelemetry Collector's OTLP receiver (test/otelcol)
// as a netSink: a message is a record's string body. It is stalled with
// SIGSTOP, a collector that hangs.
type otlpSink struct{ *otelcol.Collector }

func newOTLPSink(dir string, reserve bool) (*otlpSink, error) {
	bin, err := otelcol.Binary(otelcolSrc)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := otelcol.New(bin, filepath.Join(dir, "logs.jsonl"))
	if err != nil {
		return nil, err
	}
	if !reserve {
		if err := c.Start(); err != nil {
			return nil, err
		}
	}
	return &otlpSink{c}, nil
}

func (otlpSink) Scheme() string { return "http" }
func (o otlpSink) Addr() string { return o.Collector.Addr }
func (o otlpSink) URL() string  { return "http://" + o.Collector.Addr }
func (o otlpSink) Close()       { o.Stall(false); o.Stop() }
func (o otlpSink) Stall(on bool) {
	if pid := o.Pid(); pid > 0 {
		sig := syscall.SIGCONT
		if on {
			sig = syscall.SIGSTOP
		}
		syscall.Kill(pid, sig)
	}
}

func (o otlpSink) Messages(atLeast int, d time.Duration) ([]string, error) {
	var msgs []string
	var rerr error
	waitFor(d, "", func() bool {
		msgs, rerr = o.read()
		return rerr != nil || len(msgs) >= atLeast
	})
	return msgs, rerr
}

// read returns the string bodies of every record the collector wrote, in
// order. The numbered lines are plain ASCII without quotes, and so are
// the drop markers: the body is the text up to the next quote.
func (o otlpSink) read() ([]string, error) {
	f, err := os.Open(o.Out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 256<<20)
	key := []byte(`"body":{"stringValue":"`)
	for sc.Scan() {
		b := sc.Bytes()
		if len(b) == 0 || b[len(b)-1] != '}' {
			break // being written
		}
		for {
			i := bytes.Index(b, key)
			if i < 0 {
				break
			}
			b = b[i+len(key):]
			j := bytes.IndexByte(b, '"')
			if j < 0 {
				break
			}
			msgs = append(msgs, string(b[:j]))
			b = b[j:]
		}
	}
	return msgs, sc.Err()
}
