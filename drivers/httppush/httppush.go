// Package httppush is the sending half that our HTTP drivers (otlp, loki,
// splunk, gcplogs) share: it gathers the messages a driver takes into batches by
// size (and count) and time, posts each batch from one goroutine in
// order, retries what the server may take later with backoff (and its
// Retry-After), and tells the driver's DroppingLogger callback about
// lines the server refused for good or that it gave up on. It has what
// capability.Flusher and PendingLogger ask for, so a delivery mode frees
// a line (from the pipe, the spool) only once the server took it.
//
// It must never import package drivers, a driver's package, the reader, a
// delivery mode, the supervisor or the worker.
package httppush

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/backoff"
	"github.com/joyent/dockerlogger/diag"
)

// Batch gathers messages in the driver's wire format.
type Batch interface {
	// Add copies what it needs of msg; the caller puts msg back.
	Add(msg *logger.Message)
	// Size is about what the encoded batch will take, in bytes.
	Size() int
	// Encode returns the request body.
	Encode() ([]byte, error)
	Reset()
}

// Fitter is a Batch that is sent before a message that would take it
// past BatchSize, rather than with it (Google's bundler, for gcplogs).
type Fitter interface {
	// Fits says whether msg can join the batch within limit bytes.
	Fits(msg *logger.Message, limit int) bool
}

// Result is what a driver makes of the server's answer to one post.
type Result struct {
	// Retry says the server may take the batch later (429, 5xx, no answer).
	Retry bool
	// After is the server's Retry-After, 0 when it sent none.
	After time.Duration
	// Refused is how many of the batch's lines the server refused for
	// good, with Reason (diag/reasons.go); -1 for all of them.
	Refused int64
	Reason  string
	// Err is reported (one line) when the post failed or lines were refused.
	Err error
}

// Config is what a driver sets.
type Config struct {
	Name       string
	NewBatch   func() Batch
	BatchSize  int           // bytes: a batch this large is sent at once
	BatchWait  time.Duration // a batch is sent this long after its first line at the latest
	MaxRecords int           // if set, a batch of this many messages (markers too) is sent at once
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Attempts bounds the posts of one batch; 0 retries without end.
	Attempts int
	// Send posts body; it bounds its own time.
	Send func(ctx context.Context, body []byte) Result
	// Report says what went wrong (rate limited by the caller).
	Report func(error)
}

// Bounds of what a Pusher holds: maxQueued batches ready to send (the one
// being sent among them) besides the one filling; Log waits up to
// queueWait for room, then fails so that the delivery mode retries and
// counts. flushWait bounds Flush as syslogrelp.go's relpFlushWait does:
// longer, and a server that is down would hold the reader without an
// error for the mode to count.
const (
	maxQueued  = 2
	queueWait  = 5 * time.Second
	flushWait  = 2 * time.Second
	maxRetryAt = 5 * time.Minute // the longest Retry-After obeyed
)

type sealed struct {
	batch        Batch
	lines, bytes int64
}

// Pusher is the batching sender of one driver.
type Pusher struct {
	cfg Config

	mu       sync.Mutex
	notify   chan struct{} // closed and replaced at every change
	cur      Batch
	curRecs  int   // what cur holds, drop markers too
	curLines int64 // and its lines and bytes, without them
	curBytes int64
	gen      uint64 // counts seals, so a late timer seals nothing
	timer    *time.Timer
	queue    []sealed // queue[0] is being sent
	free     []Batch
	closing  bool
	done     chan struct{}
	dropped  atomic.Pointer[func(reason string, lines, bytes int64)]
}

// New starts the sender.
func New(cfg Config) *Pusher {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	p := &Pusher{cfg: cfg, notify: make(chan struct{}), cur: cfg.NewBatch(), done: make(chan struct{})}
	go p.run()
	return p
}

// OnDrop sets who is told of lines the server refused or that were given
// up on (capability.DroppingLogger).
func (p *Pusher) OnDrop(f func(reason string, lines, bytes int64)) { p.dropped.Store(&f) }

func (p *Pusher) changed() {
	close(p.notify)
	p.notify = make(chan struct{})
}

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("driver closed")

// Log adds msg to the batch being filled, which is sent once it reaches
// BatchSize or BatchWait after its first line. It waits while maxQueued
// batches are unsent, and fails after queueWait (nothing taken).
func (p *Pusher) Log(msg *logger.Message) error { return p.log(msg, true) }

// LogMarker takes a drop marker (capability.MarkerLogger): sent as any
// line, left out of Pending and of what is reported dropped.
func (p *Pusher) LogMarker(msg *logger.Message) error { return p.log(msg, false) }

func (p *Pusher) log(msg *logger.Message, counted bool) error {
	defer logger.PutMessage(msg)
	var timeout <-chan time.Time
	p.mu.Lock()
	for len(p.queue) >= maxQueued && !p.closing {
		ch := p.notify
		p.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(queueWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			lines, _ := p.Pending()
			return fmt.Errorf("%s: %d lines not yet accepted by the server", p.cfg.Name, lines)
		}
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.closing {
		return ErrClosed
	}
	if f, ok := p.cur.(Fitter); ok && p.curRecs > 0 && !f.Fits(msg, p.cfg.BatchSize) {
		p.seal()
	}
	if p.curRecs == 0 && p.cfg.BatchWait > 0 {
		gen := p.gen
		if p.timer == nil {
			p.timer = time.AfterFunc(p.cfg.BatchWait, func() { p.sealGen(gen) })
		} else {
			p.timer.Stop()
			p.timer = time.AfterFunc(p.cfg.BatchWait, func() { p.sealGen(gen) })
		}
	}
	p.cur.Add(msg)
	p.curRecs++
	if counted {
		p.curLines++
		p.curBytes += int64(len(msg.Line))
	}
	if p.cur.Size() >= p.cfg.BatchSize || p.cfg.BatchWait <= 0 || p.cfg.MaxRecords > 0 && p.curRecs >= p.cfg.MaxRecords {
		p.seal()
	}
	return nil
}

// sealGen seals the batch that was filling when the timer was armed.
func (p *Pusher) sealGen(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen == gen {
		p.seal()
	}
}

// seal queues the batch being filled, if it holds anything. p.mu held.
func (p *Pusher) seal() {
	if p.curRecs == 0 {
		return
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	p.gen++
	p.queue = append(p.queue, sealed{batch: p.cur, lines: p.curLines, bytes: p.curBytes})
	if n := len(p.free); n > 0 {
		p.cur, p.free = p.free[n-1], p.free[:n-1]
	} else {
		p.cur = p.cfg.NewBatch()
	}
	p.curRecs, p.curLines, p.curBytes = 0, 0, 0
	p.changed()
}

// Pending returns the lines taken and not yet accepted by the server, and
// their bytes: lost if the logger must exit now.
func (p *Pusher) Pending() (lines, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines, bytes = p.curLines, p.curBytes
	for _, s := range p.queue {
		lines += s.lines
		bytes += s.bytes
	}
	return lines, bytes
}

// Flush sends what is being gathered now and waits until the server has
// taken everything, at most flushWait. The reader calls it before it
// consumes a round of input from the pipe, and the spool before it frees
// a batch: what the server has not taken stays there for the next worker.
func (p *Pusher) Flush() error {
	t := time.NewTimer(flushWait)
	defer t.Stop()
	p.mu.Lock()
	p.seal()
	for len(p.queue) > 0 {
		ch := p.notify
		p.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			lines, _ := p.Pending()
			return fmt.Errorf("%s: %d lines not yet accepted by the server", p.cfg.Name, lines)
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// Close sends what is left and returns once the server took it (or the
// lines were given up on). It may wait as long as the server fails: the
// worker bounds it with close-timeout and counts Pending as dropped.
func (p *Pusher) Close() error {
	p.mu.Lock()
	if !p.closing {
		p.seal()
		p.closing = true
		p.changed()
	}
	p.mu.Unlock()
	<-p.done
	return nil
}

func (p *Pusher) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.queue) == 0 {
			if p.closing {
				if p.timer != nil {
					p.timer.Stop()
				}
				p.mu.Unlock()
				return
			}
			ch := p.notify
			p.mu.Unlock()
			<-ch
			p.mu.Lock()
		}
		s := p.queue[0]
		p.mu.Unlock()
		p.send(s)
		s.batch.Reset()
		p.mu.Lock()
		p.queue = p.queue[1:]
		p.free = append(p.free, s.batch)
		p.changed()
		p.mu.Unlock()
	}
}

// send posts one batch until the server takes it, refuses it, or the
// retries are spent.
func (p *Pusher) send(s sealed) {
	body, err := s.batch.Encode()
	if err != nil {
		p.cfg.Report(fmt.Errorf("%s: encode %d lines: %w", p.cfg.Name, s.lines, err))
		p.drop(diag.Rejected, s.lines, s.bytes)
		return
	}
	wait := backoff.New(p.cfg.MinBackoff, p.cfg.MaxBackoff)
	for attempt := 0; ; attempt++ {
		r := p.cfg.Send(context.Background(), body)
		if !r.Retry {
			if r.Refused != 0 && s.lines > 0 {
				n, b := s.lines, s.bytes
				if r.Refused > 0 && r.Refused < s.lines {
					// The server says how many, not which: the bytes
					// are the batch's average (README).
					n, b = r.Refused, s.bytes*r.Refused/s.lines
				}
				p.drop(r.Reason, n, b)
			}
			if r.Err != nil {
				p.cfg.Report(r.Err)
			}
			return
		}
		if p.cfg.Attempts > 0 && attempt+1 >= p.cfg.Attempts {
			p.cfg.Report(fmt.Errorf("%s: gave up on %d lines after %d attempts: %v", p.cfg.Name, s.lines, attempt+1, r.Err))
			p.drop(diag.DriverGaveUp, s.lines, s.bytes)
			return
		}
		d := wait.Next()
		if r.After > d {
			d = min(r.After, maxRetryAt)
		}
		p.cfg.Report(fmt.Errorf("%v (%d lines, retrying in %v)", r.Err, s.lines, d))
		time.Sleep(d)
	}
}

func (p *Pusher) drop(reason string, lines, bytes int64) {
	if f := p.dropped.Load(); f != nil && lines > 0 {
		(*f)(reason, lines, bytes)
	}
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date; 0 when
// absent or unreadable.
func RetryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
