// Package diag owns the logger's own voice: the counters every stage adds
// to, their one-line key=value and Prometheus renderings, and the
// rate-limited error lines the logger writes to its own stderr.
//
// It must never import any other package of dockerlogger but safedir (a
// leaf): every stage imports it, so it sits below them all.
package diag

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/joyent/dockerlogger/safedir"
)

// Stream counts what was read from one input.
type Stream struct {
	Lines   atomic.Int64
	Bytes   atomic.Int64
	Partial atomic.Int64 // messages that were partial chunks of a longer line
	// Read is poked after each message counted: an idle worker sleeps
	// on it instead of writing its stats file on a timer.
	Read Waker
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
	// The dual-logging cache (package logcache) keeps its own counts: a
	// line it could not keep was not lost from delivery, so it is in
	// neither Delivered nor Dropped.
	// Its keys show only when it is on (CacheOn).
	CacheOn                         atomic.Bool
	Cached, CachedBytes             atomic.Int64
	CacheDropped, CacheDroppedBytes atomic.Int64
	// MaybeDelivered: of the lines dropped, how many a worker that was
	// killed while handing them over may have delivered all the same.
	MaybeDelivered atomic.Int64

	mu      sync.Mutex
	reasons map[string]*[2]int64 // drop reason -> lines, bytes
	extra   map[string]string
	// carried drops across workers (see CarryDrops); nil when not shared
	carryLines, carryBytes *atomic.Int64
	// carrySeen: what the carried counts held as far as this process
	// knows (its own drops included), for CatchUp.
	carrySeen [2]int64
}

// CarryDrops makes the drop counts survive this process: lines and bytes
// live in memory shared with the next worker. What earlier workers
// dropped is counted here first, as "earlier-workers", and every drop
// from now on is added there too.
func (c *Counters) CarryDrops(lines, bytes *atomic.Int64) {
	if lines == nil || bytes == nil {
		return
	}
	c.mu.Lock()
	l, b := lines.Load(), bytes.Load()
	c.carryLines, c.carryBytes = lines, bytes
	c.carrySeen = [2]int64{l, b}
	c.mu.Unlock()
	if l > 0 {
		c.drop(EarlierWorkers, l, b)
	}
}

// CatchUp counts, as earlier-workers', what another process added to the
// carried drops since CarryDrops or the last CatchUp: the supervisor
// drops while it keeps room in the pipes, until this worker reads.
func (c *Counters) CatchUp() {
	c.mu.Lock()
	if c.carryLines == nil {
		c.mu.Unlock()
		return
	}
	l, b := c.carryLines.Load(), c.carryBytes.Load()
	dl, db := l-c.carrySeen[0], b-c.carrySeen[1]
	c.carrySeen = [2]int64{l, b}
	c.mu.Unlock()
	if dl > 0 {
		c.drop(EarlierWorkers, dl, db)
	}
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
	if c.carryLines != nil {
		c.carryLines.Add(lines)
		c.carryBytes.Add(bytes)
		c.carrySeen[0] += lines
		c.carrySeen[1] += bytes
	}
	c.mu.Unlock()
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

// spooledKey is the stat of the lines left in the spool for the next
// logger on its spool-dir.
const spooledKey = "lines_spooled"

// SetSpooled says how many lines are left in the spool (lines_spooled).
func (c *Counters) SetSpooled(n int64) { c.Set(spooledKey, strconv.FormatInt(n, 10)) }

// AddSpooled adds n lines to those left in the spool (lines_spooled).
func (c *Counters) AddSpooled(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.extra == nil {
		c.extra = map[string]string{}
	}
	had, _ := strconv.ParseInt(c.extra[spooledKey], 10, 64)
	c.extra[spooledKey] = strconv.FormatInt(had+n, 10)
}

// Get returns a value Set, "" if none.
func (c *Counters) Get(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.extra[key]
}

// KV is one named value.
type KV struct {
	Key   string
	Value string
}

// Snapshot returns every counter, totals first in the order the README
// names them, then per-stream and per-reason keys.
func (c *Counters) Snapshot() []KV {
	i := func(v int64) string { return fmt.Sprint(v) }
	// The order of the loads keeps every snapshot consistent, with
	// delivered + dropped <= read: a line is read before it is delivered
	// or dropped, so read is loaded last; a line that moves from
	// delivered to dropped (a driver that gave up on it) leaves
	// delivered first, so dropped is loaded before delivered.
	dropped, droppedBytes := c.Dropped.Load(), c.DroppedBytes.Load()
	delivered, deliveredBytes := max(c.Delivered.Load(), 0), max(c.DeliveredBytes.Load(), 0)
	read := c.Stdout.Lines.Load() + c.Stderr.Lines.Load()
	readBytes := c.Stdout.Bytes.Load() + c.Stderr.Bytes.Load()
	kv := []KV{
		{"lines_read", i(read)},
		{"lines_delivered", i(delivered)},
		{"lines_dropped", i(dropped)},
		{"bytes_read", i(readBytes)},
		{"bytes_dropped", i(droppedBytes)},
		{"restarts", i(c.Restarts.Load())},
		{"bytes_delivered", i(deliveredBytes)},
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
	if n := c.MaybeDelivered.Load(); n > 0 {
		// Not a drop reason: a bound on lines counted twice.
		kv = append(kv, KV{"lines_dropped_maybe_delivered", i(n)})
	}
	if c.CacheOn.Load() {
		// Not a drop reason: lines_dropped does not include it.
		kv = append(kv, KV{"lines_cached", i(c.Cached.Load())}, KV{"bytes_cached", i(c.CachedBytes.Load())},
			KV{"lines_dropped_cache", i(c.CacheDropped.Load())}, KV{"bytes_dropped_cache", i(c.CacheDroppedBytes.Load())})
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

// WriteFile replaces path atomically with the Prometheus rendering: a
// temporary file created in path's directory, renamed over path, both
// relative to the directory opened without following a link (package
// safedir). A link at path is replaced, never written through.
func (c *Counters) WriteFile(path string) error {
	dir, err := safedir.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write stats %s: %w", Quote(path), err)
	}
	defer dir.Close()
	tmp, name, err := dir.CreateTemp(".stats-", 0o600)
	if err != nil {
		return fmt.Errorf("write stats %s: %w", Quote(path), err)
	}
	_, err = io.WriteString(tmp, c.Prometheus())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dir.Rename(name, filepath.Base(path))
	}
	if err != nil {
		dir.Remove(name)
		return fmt.Errorf("write stats %s: %w", Quote(path), err)
	}
	return nil
}

// MaxQuote is the most of a value an error line quotes.
const MaxQuote = 200

// Quote returns v quoted (Go syntax, control characters escaped), cut to
// its first MaxQuote bytes (on a character boundary) with how much was
// left out: an error line must stay one readable line whatever the value.
func Quote(v string) string {
	if len(v) <= MaxQuote {
		return strconv.Quote(v)
	}
	cut := MaxQuote
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes in all)", strconv.Quote(v[:cut]), len(v))
}

// Cut returns s cut to its first max bytes (on a character boundary),
// saying how long it was, or s itself if it is no longer than max.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes in all)", s[:cut], len(s))
}

// MaxLine is the longest error line Errors writes; the rest is cut.
const MaxLine = 1024

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
	msg = capLine(msg)
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

// capLine cuts msg to MaxLine bytes (on a character boundary), saying how
// much was cut, and escapes the control characters it still holds (a
// value quoted with %s, a path with a newline in it).
func capLine(msg string) string {
	n := len(msg)
	if n > MaxLine {
		cut := MaxLine
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = fmt.Sprintf("%s... (%d bytes cut)", msg[:cut], n-cut)
	}
	if strings.IndexFunc(msg, isControl) < 0 {
		return msg
	}
	var b strings.Builder
	for _, r := range msg {
		if isControl(r) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }
