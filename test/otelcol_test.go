package test

// The OpenTelemetry Collector for the otlp driver's tests: test/otelcol is
// a module of its own (so nothing of the Collector enters the product's
// go.mod) that runs the Collector's own OTLP receiver and writes what it
// accepts as OTLP JSON lines; internal/otelcol builds it once per source
// into a cache directory and runs it.

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/joyent/dockerlogger/internal/otelcol"
)

var (
	otelcolOnce sync.Once
	otelcolPath string
	otelcolErr  error
)

// otelcolBinary builds test/otelcol, or finds it built for the same
// sources (internal/otelcol).
func otelcolBinary(t testing.TB) string {
	t.Helper()
	otelcolOnce.Do(func() { otelcolPath, otelcolErr = otelcol.Binary("otelcol") })
	if otelcolErr != nil {
		t.Fatal(otelcolErr)
	}
	return otelcolPath
}

// collector is one collector of a test.
type collector struct {
	*otelcol.Collector
	t testing.TB
}

// newOtelcol prepares a collector on a free address, not started; tls
// is cert, key and client CA, or nothing.
func newOtelcol(t testing.TB, tls ...string) *collector {
	t.Helper()
	c, err := otelcol.New(otelcolBinary(t), filepath.Join(t.TempDir(), "logs.jsonl"), tls...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return &collector{Collector: c, t: t}
}

// startOtelcol starts a collector and waits until it listens.
func startOtelcol(t testing.TB, tls ...string) *collector {
	t.Helper()
	c := newOtelcol(t, tls...)
	c.Start()
	return c
}

// Start runs the collector and waits until it accepts connections.
func (c *collector) Start() {
	c.t.Helper()
	if err := c.Collector.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// URL is the collector's base URL.
func (c *collector) URL(scheme string) string { return scheme + "://" + c.Addr }

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
func (c *collector) Records() []otlpRecord {
	c.t.Helper()
	f, err := os.Open(c.Out)
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
func (c *collector) Wait(n int, d time.Duration) []otlpRecord {
	c.t.Helper()
	var recs []otlpRecord
	Eventually(c.t, d, strconv.Itoa(n)+" records at the collector", func() bool {
		recs = c.Records()
		return len(recs) >= n
	})
	return recs
}
