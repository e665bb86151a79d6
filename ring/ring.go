// Package ring owns the bounded in-memory FIFO of the non-blocking mode:
// one byte buffer of a fixed size holding opaque records back to back, each
// behind a 4-byte length. Memory is the buffer and nothing else, whatever
// the input does; when a record does not fit, the Policy decides which
// records go, and every record that goes is handed to the Drop callback so
// the caller can count it.
//
// It must never import a driver, the reader or a delivery mode: it knows
// only bytes.
package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
)

// Policy says what a full ring does with a record that does not fit.
type Policy int

const (
	// DropOldest drops the oldest records until the new one fits.
	DropOldest Policy = iota
	// DropNewest drops the new record.
	DropNewest
	// Block makes Put wait until the consumer has made room.
	Block
)

// Overhead is what each record costs in the ring besides its own bytes.
const Overhead = 4

// ErrClosed is returned by Get once the ring is closed and empty.
var ErrClosed = errors.New("ring closed")

// Why a record was dropped.
const (
	Full     = "buffer-full" // the ring was full
	TooLarge = "too-large"   // the record is larger than the whole ring
	Closed   = "closed"      // Put after Close
)

// mmapMin is the smallest ring kept outside the Go heap (see alloc).
const mmapMin = 64 << 10

// A ring that emptied after holding more than releaseMin bytes gives the
// pages it wrote back to the system, but for the first releaseKeep bytes,
// which records use when the consumer keeps up: after an outage the
// logger goes back to its usual size instead of keeping max-buffer-size
// resident until it exits. (A multiple of every page size.)
const (
	releaseMin  = 1 << 20
	releaseKeep = 64 << 10
)

// Ring is a FIFO of records in a fixed-size byte buffer. Its methods are
// safe for concurrent use by producers and one consumer. The buffer is
// the ring's only memory of any size: records are copied in and out, a
// dropped record is shown to Drop where it lies unless it wraps.
type Ring struct {
	policy Policy
	// Drop is called, with the ring locked, for every record dropped and
	// why: the record is head followed by tail (a record that wraps, or
	// one put in parts, comes in two), valid only during the call.
	drop func(head, tail []byte, why string)

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	head   int // offset of the oldest record
	used   int // bytes in use, headers included
	n      int // records held
	closed bool
	hdr    [Overhead]byte
	// release gives pages of buf back to the system (nil: buf is Go
	// heap); hi is how far into buf was written since the last release.
	release func([]byte)
	hi      int
}

// New returns a ring of size bytes (records and their headers).
func New(size int, policy Policy, drop func(head, tail []byte, why string)) *Ring {
	if size < Overhead+1 {
		size = Overhead + 1
	}
	if drop == nil {
		drop = func([]byte, []byte, string) {}
	}
	r := &Ring{policy: policy, drop: drop}
	r.buf, r.release = alloc(r, size)
	r.cond = sync.NewCond(&r.mu)
	return r
}

// Size is the capacity in bytes.
func (r *Ring) Size() int { return len(r.buf) }

// Put appends a copy of rec. It reports whether rec was kept: false means
// it was dropped (and handed to Drop) because it is larger than the ring,
// the policy is DropNewest and the ring is full, or the ring is closed
// (nobody would take it out).
func (r *Ring) Put(rec []byte) bool { return r.PutParts(rec, nil) }

// PutParts is Put of the record head followed by tail, copied straight
// into the ring: a caller that frames a line it does not own (the
// reader's buffer) needs no buffer of its own the size of the line.
func (r *Ring) PutParts(head, tail []byte) bool {
	size := len(head) + len(tail)
	need := size + Overhead
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.drop(head, tail, Closed)
		return false
	}
	if need > len(r.buf) {
		r.drop(head, tail, TooLarge)
		return false
	}
	for len(r.buf)-r.used < need {
		switch r.policy {
		case DropNewest:
			r.drop(head, tail, Full)
			return false
		case Block:
			r.cond.Wait()
			if r.closed {
				r.drop(head, tail, Closed)
				return false
			}
		default:
			r.dropOldest()
		}
	}
	binary.LittleEndian.PutUint32(r.hdr[:], uint32(size))
	end := (r.head + r.used) % len(r.buf)
	end = r.write(end, r.hdr[:])
	end = r.write(end, head)
	r.write(end, tail)
	r.used += need
	r.n++
	r.cond.Broadcast()
	return true
}

// write copies p into the buffer at off, wrapping, and returns the offset
// after it.
func (r *Ring) write(off int, p []byte) int {
	c := copy(r.buf[off:], p)
	if c < len(p) {
		copy(r.buf, p[c:])
		r.hi = len(r.buf)
	} else {
		r.hi = max(r.hi, off+c)
	}
	return (off + len(p)) % len(r.buf)
}

// read appends n bytes at off to dst, wrapping.
func (r *Ring) read(dst []byte, off, n int) []byte {
	end := off + n
	if end <= len(r.buf) {
		return append(dst, r.buf[off:end]...)
	}
	dst = append(dst, r.buf[off:]...)
	return append(dst, r.buf[:end-len(r.buf)]...)
}

// oldest returns the offset and length of the oldest record's bytes.
func (r *Ring) oldest() (off, n int) {
	h := r.read(r.hdr[:0], r.head, Overhead)
	return (r.head + Overhead) % len(r.buf), int(binary.LittleEndian.Uint32(h))
}

// remove forgets the oldest record, of n bytes.
func (r *Ring) remove(n int) {
	r.head = (r.head + Overhead + n) % len(r.buf)
	r.used -= Overhead + n
	r.n--
	if r.n == 0 {
		r.head, r.used = 0, 0 // keep records contiguous when we can
	}
	r.cond.Broadcast()
}

// pop removes the oldest record, appending it to dst; if that empties a
// ring that held a backlog, its pages go back to the system.
func (r *Ring) pop(dst []byte) []byte {
	off, n := r.oldest()
	dst = r.read(dst, off, n)
	r.remove(n)
	if r.n == 0 && r.release != nil && r.hi > releaseMin {
		r.release(r.buf[releaseKeep:r.hi])
		r.hi = releaseKeep
	}
	return dst
}

func (r *Ring) dropOldest() {
	off, n := r.oldest()
	// Shown where it lies, in two parts if it wraps: no copy, no scratch
	// the size of the record.
	if end := off + n; end <= len(r.buf) {
		r.drop(r.buf[off:end:end], nil, Full)
	} else {
		r.drop(r.buf[off:len(r.buf):len(r.buf)], r.buf[:end-len(r.buf):end-len(r.buf)], Full)
	}
	r.remove(n)
}

// Get removes the oldest record and appends it to dst, waiting for one
// until ctx is done or the ring is closed and empty (ErrClosed).
func (r *Ring) Get(ctx context.Context, dst []byte) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.n == 0 {
		if r.closed {
			return dst, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return dst, err
		}
		r.cond.Wait()
	}
	return r.pop(dst), nil
}

// TryGet is Get without waiting: ok is false when the ring is empty.
func (r *Ring) TryGet(dst []byte) (_ []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return dst, false
	}
	return r.pop(dst), true
}

// Len returns the records and bytes (headers included) held now.
func (r *Ring) Len() (records, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n, r.used
}

// Close wakes everyone: Get returns what is left, then ErrClosed; Put
// (blocked on a full ring or not) drops its record as Closed.
func (r *Ring) Close() {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
}
