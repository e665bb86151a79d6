// Package logcache keeps Docker's dual-logging cache: a copy, in the
// local driver's format (package filelog), of every line the logger read
// for a driver that cannot be read back, so that `dockerlogger logs` shows
// what a remote sink got — or, unlike Docker's cache, which records only
// what the sink accepted, what it never got.
//
// The cache sits beside delivery, never in its way: Tee copies each
// message into the cache's own bounded buffer and passes the original on
// at once; a goroutine writes the buffer to the file. A full buffer (a
// slow or full disk) drops the copy, counted in lines_dropped_cache,
// which is not a delivery drop.
//
// It must never import a driver, the delivery modes, the supervisor or
// the worker: it is a sink the worker tees the reader's output to.
package logcache

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/daemon/logger"

	"github.com/joyent/dockerlogger/diag"
	"github.com/joyent/dockerlogger/filelog"
	"github.com/joyent/dockerlogger/reader"
	"github.com/joyent/dockerlogger/safedir"
)

// BufferSize is the most bytes of lines the cache holds in memory, waiting
// for its file.
const BufferSize = 1 << 20

// overhead is what a held message costs beyond its line, for the bound.
const overhead = 128

// Options say where the cache is and how it rotates (cache-path,
// cache-max-size, cache-max-file, cache-compress).
type Options struct {
	Path     string
	MaxSize  int64
	MaxFiles int
	Compress bool
	// Buffer is the bound of the buffer in bytes; BufferSize if zero.
	Buffer int64
}

// Cache is an open cache file and the goroutine that writes it.
type Cache struct {
	file   *filelog.Local
	count  *diag.Counters
	report func(error)
	max    int64

	mu       sync.Mutex
	queue    []*logger.Message
	held     int64
	closed   bool
	dropping bool // dropping since the last line it kept: said once
	wake     chan struct{}
	done     chan struct{}
}

// Open opens (or creates, with its directory) the cache file. report gets
// the errors that cost cache lines; count gets the cache's counters.
func Open(o Options, count *diag.Counters, report func(error)) (*Cache, error) {
	if o.Buffer <= 0 {
		o.Buffer = BufferSize
	}
	d, err := safedir.MkdirAll(filepath.Dir(o.Path), 0o750)
	if err != nil {
		return nil, fmt.Errorf("cache-path %s: %w", o.Path, err)
	}
	d.Close()
	f, err := filelog.NewLocal(filelog.Options{Path: o.Path, MaxSize: o.MaxSize, MaxFiles: o.MaxFiles,
		Compress: o.Compress, OnError: func(err error) { report(fmt.Errorf("cache: %w", err)) }})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &Cache{file: f, count: count, report: report, max: o.Buffer,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	count.CacheOn.Store(true)
	f.SetAccounting(accounting{c})
	go c.run()
	return c, nil
}

type accounting struct{ c *Cache }

func (a accounting) Written(lines, bytes int64) {
	a.c.count.Cached.Add(lines)
	a.c.count.CachedBytes.Add(bytes)
}

func (a accounting) Lost(lines, bytes int64, reason string) {
	a.c.drop(lines, bytes, fmt.Errorf("%d lines not written (%s)", lines, reason))
}

// drop counts lines the cache could not keep, and says why once per run
// of drops.
func (c *Cache) drop(lines, bytes int64, why error) {
	c.count.CacheDropped.Add(lines)
	c.count.CacheDroppedBytes.Add(bytes)
	c.mu.Lock()
	say := !c.dropping
	c.dropping = true
	c.mu.Unlock()
	if say {
		c.report(fmt.Errorf("cache: dropping lines (counted in lines_dropped_cache): %w", why))
	}
}

var errFull = errors.New("its buffer is full (the disk is slow or full)")

// add copies msg into the buffer, or counts it dropped; it never waits.
func (c *Cache) add(msg *logger.Message) {
	n := int64(len(msg.Line)) + overhead
	c.mu.Lock()
	if c.closed || c.held+n > c.max {
		c.mu.Unlock()
		c.drop(1, int64(len(msg.Line)), errFull)
		return
	}
	m := logger.NewMessage()
	m.Source, m.Timestamp = msg.Source, msg.Timestamp
	m.Line = append(m.Line[:0], msg.Line...)
	if msg.PLogMetaData != nil {
		p := *msg.PLogMetaData
		m.PLogMetaData = &p
	}
	c.queue = append(c.queue, m)
	c.held += n
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run writes what the buffer holds, then flushes, until Close.
func (c *Cache) run() {
	defer close(c.done)
	var batch []*logger.Message
	for {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		closed := c.closed
		c.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-c.wake
			continue
		}
		var freed int64
		for i, m := range batch {
			n := int64(len(m.Line))
			freed += n + overhead
			if err := c.file.Log(m); err != nil { // Log owns m
				c.drop(1, n, err)
			} else {
				c.mu.Lock()
				c.dropping = false
				c.mu.Unlock()
			}
			batch[i] = nil
		}
		c.file.Flush()
		c.mu.Lock()
		c.held -= freed
		c.mu.Unlock()
	}
}

// Close writes what the buffer holds, within timeout, and closes the
// file; what is left is counted dropped. Only the first call does.
func (c *Cache) Close(timeout time.Duration) error { return c.close(timeout, false) }

// CloseHandingOver is Close for a worker handing over to the next: it
// does not wait for a compression under way (the next worker's cache
// does it again, see filelog.File.CloseHandingOver), which the pipes,
// unread until the next worker starts, would wait for.
func (c *Cache) CloseHandingOver(timeout time.Duration) error { return c.close(timeout, true) }

func (c *Cache) close(timeout time.Duration, handingOver bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.mu.Lock()
		var lines, bytes int64
		for _, m := range c.queue {
			lines++
			bytes += int64(len(m.Line))
		}
		c.queue = nil
		c.mu.Unlock()
		if lines > 0 {
			c.drop(lines, bytes, errors.New("not written within close-timeout"))
		}
		return nil // the writer may still hold the file: leave it open
	}
	if handingOver {
		return c.file.CloseHandingOver()
	}
	return c.file.Close()
}

// Tee returns a sink that gives the cache a copy of each message and then
// passes the message to next.
func (c *Cache) Tee(next reader.Sink) reader.Sink {
	t := &tee{c: c, next: next}
	if _, ok := next.(reader.Leaver); ok {
		return leavingTee{borrowingTee{t}}
	}
	if _, ok := next.(reader.Borrower); ok {
		return borrowingTee{t}
	}
	return t
}

type tee struct {
	c    *Cache
	next reader.Sink
}

func (t *tee) Log(msg *logger.Message) error {
	t.c.add(msg)
	return t.next.Log(msg)
}

// borrowingTee is a tee whose next sink borrows (reader.Borrower): the
// cache copies what it keeps, so it may borrow too.
type borrowingTee struct{ *tee }

func (t borrowingTee) LogBorrowed(msg *logger.Message) error {
	t.c.add(msg)
	return t.next.(reader.Borrower).LogBorrowed(msg)
}

// leavingTee is a tee whose next sink may leave a message to the next
// worker (reader.Leaver): the cache keeps a message only once the sink
// did not leave it, or the next worker's cache would keep it again.
type leavingTee struct{ borrowingTee }

var _ reader.Leaver = leavingTee{}

func (t leavingTee) FlushOrLeave() error { return t.next.(reader.Leaver).FlushOrLeave() }

func (t leavingTee) LogOrLeave(msg *logger.Message) error {
	err := t.next.(reader.Leaver).LogOrLeave(msg)
	if err != nil && reader.IsHandover(err) {
		return err
	}
	t.c.add(msg)
	return err
}

// Flush passes on to a sink that buffers (reader.Flusher).
func (t *tee) Flush() error {
	if f, ok := t.next.(reader.Flusher); ok {
		return f.Flush()
	}
	return nil
}
