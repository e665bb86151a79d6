// Package diag owns the logger's own voice: the counters every stage adds
// to, their one-line key=value and Prometheus renderings, and the
// rate-limited error lines the logger writes to its own stderr.
//
// It must never import any other package of dockerlogger: every stage
// imports it, so it sits below them all.
package diag

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stream counts what was read from one input.
type Stream struct {
	Lines   atomic.Int64
	Bytes   atomic.Int64
	Partial atomic.Int64 // messages that were partial chunks of a longer line
}

// Counters are the totals for one logger process.
type Counters struct {
	Stdout, Stderr Stream

	Delivered      atomic.Int64
	DeliveredBytes atomic.Int64
	Dropped        atomic.Int64 // lines lost, for whatever reason, counted
	DroppedBytes   atomic.Int64
	Retries        atomic.Int64 // deliveries tried again after a driver error
	DriverErrors   atomic.Int64
	Restarts       atomic.Int64
	Upgrades       atomic.Int64 // live upgrades (SIGHUP) completed
	Replayed       atomic.Int64 // lines delivered again after a worker died
	Resent         atomic.Int64 // lines a driver sent again after its connection broke (may arrive twice)
	BufferBytes    atomic.Int64 // bytes held by the ring or spool now

	mu      sync.Mutex
	reasons map[string]*[2]int64 // drop reason -> lines, bytes
	extra   map[string]string
	// carried drops across workers (see CarryDrops); nil when not shared
	carryLines, carryBytes *atomic.Int64
}

// CarryDrops makes the drop counts survive this process: lines and bytes
// live in memory shared with the next worker. What earlier workers
// dropped is counted here first, as "earlier-workers", and every drop
// from now on is added there too.
func (c *Counters) CarryDrops(lines, bytes *atomic.Int64) {
	if lines == nil || bytes == nil {
		return
	}
	if l, b := lines.Load(), bytes.Load(); l > 0 {
		c.drop("earlier-workers", l, b)
	}
	c.mu.Lock()
	c.carryLines, c.carryBytes = lines, bytes
	c.mu.Unlock()
}

// Stream returns the counters of the stream named source.
func (c *Counters) Stream(source string) *Stream {
	if source == "stderr" {
		return &c.Stderr
	}
	return &c.Stdout
}

// Drop counts lines and bytes lost for reason (e.g. "buffer-full").
func (c *Counters) Drop(reason string, lines, bytes int64) {
	c.mu.Lock()
	cl, cb := c.carryLines, c.carryBytes
	c.mu.Unlock()
	if cl != nil {
		cl.Add(lines)
		cb.Add(bytes)
	}
	c.drop(reason, lines, bytes)
}

func (c *Counters) drop(reason string, lines, bytes int64) {
	c.Dropped.Add(lines)
	c.DroppedBytes.Add(bytes)
	c.mu.Lock()
	if c.reasons == nil {
		c.reasons = map[string]*[2]int64{}
	}
	r := c.reasons[reason]
	if r == nil {
		r = new([2]int64)
		c.reasons[reason] = r
	}
	r[0] += lines
	r[1] += bytes
	c.mu.Unlock()
}

// Reason returns the lines dropped for reason so far.
func (c *Counters) Reason(reason string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.reasons[reason]; r != nil {
		return r[0]
	}
	return 0
}

// Set records a value that is not a counter, such as the version.
func (c *Counters) Set(key, value string) {
	c.mu.Lock()
	if c.extra == nil {
		c.extra = map[string]string{}
	}
	c.extra[key] = value
	c.mu.Unlock()
}

// KV is one named value.
type KV struct {
	Key   string
	Value string
}

// Snapshot returns every counter, totals first in the order DESIGN.md
// names them, then per-stream and per-reason keys.
func (c *Counters) Snapshot() []KV {
	i := func(v int64) string { return fmt.Sprint(v) }
	kv := []KV{
		{"lines_read", i(c.Stdout.Lines.Load() + c.Stderr.Lines.Load())},
		{"lines_delivered", i(c.Delivered.Load())},
		{"lines_dropped", i(c.Dropped.Load())},
		{"bytes_read", i(c.Stdout.Bytes.Load() + c.Stderr.Bytes.Load())},
		{"bytes_dropped", i(c.DroppedBytes.Load())},
		{"restarts", i(c.Restarts.Load())},
		{"bytes_delivered", i(c.DeliveredBytes.Load())},
		{"retries", i(c.Retries.Load())},
		{"driver_errors", i(c.DriverErrors.Load())},
		{"buffer_bytes", i(c.BufferBytes.Load())},
		{"upgrades", i(c.Upgrades.Load())},
		{"lines_replayed", i(c.Replayed.Load())},
		{"lines_resent", i(c.Resent.Load())},
		{"stdout_lines_read", i(c.Stdout.Lines.Load())},
		{"stdout_bytes_read", i(c.Stdout.Bytes.Load())},
		{"stderr_lines_read", i(c.Stderr.Lines.Load())},
		{"stderr_bytes_read", i(c.Stderr.Bytes.Load())},
		{"partial_messages", i(c.Stdout.Partial.Load() + c.Stderr.Partial.Load())},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var rs []string
	for r := range c.reasons {
		rs = append(rs, r)
	}
	sort.Strings(rs)
	for _, r := range rs {
		k := strings.ReplaceAll(r, "-", "_")
		kv = append(kv, KV{"lines_dropped_" + k, i(c.reasons[r][0])}, KV{"bytes_dropped_" + k, i(c.reasons[r][1])})
	}
	var es []string
	for k := range c.extra {
		es = append(es, k)
	}
	sort.Strings(es)
	for _, k := range es {
		kv = append(kv, KV{k, c.extra[k]})
	}
	return kv
}

// Line renders the counters as one line of key=value pairs.
func (c *Counters) Line() string {
	var b strings.Builder
	for n, kv := range c.Snapshot() {
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv.Key)
		b.WriteByte('=')
		if strings.ContainsAny(kv.Value, " \"=") {
			fmt.Fprintf(&b, "%q", kv.Value)
		} else {
			b.WriteString(kv.Value)
		}
	}
	return b.String()
}

// Prometheus renders the numeric counters in Prometheus text format.
func (c *Counters) Prometheus() string {
	var b strings.Builder
	for _, kv := range c.Snapshot() {
		if _, err := strconv.ParseInt(kv.Value, 10, 64); err != nil {
			fmt.Fprintf(&b, "dockerlogger_info{%s=%q} 1\n", kv.Key, kv.Value)
			continue
		}
		fmt.Fprintf(&b, "dockerlogger_%s %s\n", kv.Key, kv.Value)
	}
	return b.String()
}

// WriteFile replaces path atomically with the Prometheus rendering.
func (c *Counters) WriteFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".stats-*")
	if err != nil {
		return fmt.Errorf("write stats %s: %w", path, err)
	}
	_, err = io.WriteString(tmp, c.Prometheus())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats %s: %w", path, err)
	}
	return nil
}

// Errors writes the logger's own error lines, one per error, at most
// Burst lines at once and then one per Interval; what it holds back is
// counted and said with the next line it lets through.
type Errors struct {
	W        io.Writer
	Burst    int
	Interval time.Duration

	mu         sync.Mutex
	tokens     int
	last       time.Time
	suppressed int
	secrets    []string
}

// Redact registers values that must never be printed: every line
// Printf writes has each of them replaced by REDACTED. Give the longest
// first where one contains another.
func (e *Errors) Redact(values ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range values {
		if v != "" {
			e.secrets = append(e.secrets, v)
		}
	}
}

// NewErrors returns an Errors writing to w: 10 lines at once, then one a second.
func NewErrors(w io.Writer) *Errors {
	return &Errors{W: w, Burst: 10, Interval: time.Second, tokens: 10}
}

// Printf writes one error line prefixed with "dockerlogger: ", unless the
// rate limit holds it back.
func (e *Errors) Printf(format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.secrets {
		msg = strings.ReplaceAll(msg, v, "REDACTED")
	}
	now := time.Now()
	if e.last.IsZero() {
		e.last = now
		e.tokens = e.Burst // a new limiter starts full
	}
	if e.Interval > 0 {
		for e.tokens < e.Burst && now.Sub(e.last) >= e.Interval {
			e.tokens++
			e.last = e.last.Add(e.Interval)
		}
		if e.tokens == e.Burst {
			e.last = now
		}
	}
	if e.tokens == 0 {
		e.suppressed++
		return
	}
	e.tokens--
	if e.suppressed > 0 {
		msg = fmt.Sprintf("%s (%d similar lines suppressed)", msg, e.suppressed)
		e.suppressed = 0
	}
	fmt.Fprintf(e.W, "dockerlogger: %s\n", msg)
}
