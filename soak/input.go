package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// A numbered line starts with the header "seq=%09d len=%09d " — faults/'s
// "seq=%09d" and the line's length without its newline — and goes on with
// a payload drawn from the case's seed and the line's number, so any
// delivered message can be checked byte for byte. No payload holds '=',
// so a header is always a line's start.
const headerLen = len("seq=000000000 len=000000000 ")

// payloadRunes are the multi-byte runes of utf8 lines.
var payloadRunes = []string{"é", "ß", "€", "中", "文", "𝄞", "😀", "ñ"}

// content returns the bytes of numbered line it (newline excluded) in the
// case of seed.
func content(seed uint64, it item) []byte {
	b := make([]byte, 0, it.n)
	b = fmt.Appendf(b, "seq=%09d len=%09d ", it.seq, it.n)
	x := seed ^ uint64(it.seq+1)*0x9e3779b97f4a7c15
	next := func() uint64 { // xorshift64*
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		return x * 2685821657736338717
	}
	for len(b) < it.n {
		v := next()
		for k := 0; k < 8 && len(b) < it.n; k++ {
			c := byte(v >> (8 * k))
			switch it.kind {
			case text:
				c = 0x20 + c%0x5f
			case ctrl:
				c &= 0x7f
			case utf8:
				if c&3 == 0 {
					r := payloadRunes[int(c>>2)%len(payloadRunes)]
					if len(b)+len(r) <= it.n {
						b = append(b, r...)
						continue
					}
				}
				c = 0x20 + c%0x5f
			}
			if c == '\n' || c == '=' {
				c = '.'
			}
			b = append(b, c)
		}
	}
	return b
}

// parseHeader returns the number and length a message's header claims.
func parseHeader(m []byte) (seq, n int, ok bool) {
	if len(m) < headerLen || string(m[:4]) != "seq=" || string(m[13:18]) != " len=" || m[27] != ' ' {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(string(m[4:13]))
	l, err2 := strconv.Atoi(string(m[18:27]))
	return s, l, err1 == nil && err2 == nil
}

// slowWrite is a write(2) that blocked longer than the bound.
type slowWrite struct {
	at time.Duration // since the case's first write
	d  time.Duration
	n  int
}

// writer is the application writing one stream: it writes its lines in
// write(2)s of at most 64 KiB (an application's stdio buffer), paced to
// the case's rate with random bursts, and times every write.
type writer struct {
	f     *os.File
	items []item
	seed  uint64
	rate  int64 // bytes per second for this stream
	burst float64
	rnd   func() uint64
	start time.Time

	mu       sync.Mutex
	written  int     // items fully written
	ends     []int64 // each item's end in the stream, once given to a write
	bytes    int64
	writes   int
	maxBlock time.Duration // longest write that found the pipe over half full
	ownDelay time.Duration // longest write that found room: not the logger's
	slow     []slowWrite   // writes over 10 ms, but the first
	err      error
	errAt    time.Duration
}

const maxWrite = 64 << 10

func (w *writer) run() {
	var buf []byte
	var done, queued int64 // bytes written; bytes given to buf
	burst := int64(0)
	for i, it := range w.items {
		if it.kind == empty {
			buf = append(buf, '\n')
		} else {
			buf = append(buf, content(w.seed, it)...)
			if !it.nonl {
				buf = append(buf, '\n')
			}
		}
		queued += int64(it.n) + 1
		if it.nonl {
			queued--
		}
		w.mu.Lock()
		w.ends = append(w.ends, queued)
		w.mu.Unlock()
		last := i == len(w.items)-1
		for len(buf) > 0 && (len(buf) >= maxWrite || last || w.rnd()%4 == 0) {
			k := min(len(buf), 1+int(w.rnd()%maxWrite))
			if burst <= 0 {
				if due := w.start.Add(time.Duration(float64(done) / float64(w.rate) * float64(time.Second))); time.Until(due) > 0 {
					time.Sleep(time.Until(due))
				}
				if float64(w.rnd()%10000)/10000 < w.burst {
					burst = int64(w.rnd() % (512 << 10))
				}
			} else {
				burst -= int64(k)
			}
			if err := w.write(buf[:k]); err != nil {
				return
			}
			done += int64(k)
			buf = buf[k:]
		}
		if len(buf) == 0 {
			buf = nil
		}
	}
}

// write makes one timed write(2). A write(2) of a pipe that blocks is one
// call for the kernel; Go's poller may split it into several when the
// pipe fills, so the whole call is timed: what the application waits.
//
// Only a write that found the pipe more than half full can have waited
// for the logger: the time of one that found room is this process's own
// (the scheduler on a loaded machine, the garbage collector), kept apart
// in ownDelay and never held against the logger.
func (w *writer) write(p []byte) error {
	queued, size := w.pipeFill()
	t0 := time.Now()
	n, err := w.f.Write(p)
	d := time.Since(t0)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes += int64(n)
	for w.written < len(w.ends) && w.ends[w.written] <= w.bytes {
		w.written++ // that line is in the pipe, whole
	}
	if w.writes > 0 {
		if size > 0 && queued+len(p) <= size/2 {
			w.ownDelay = max(w.ownDelay, d)
		} else {
			w.maxBlock = max(w.maxBlock, d)
			if d > blockBound {
				w.slow = append(w.slow, slowWrite{at: t0.Sub(w.start), d: d, n: len(p)})
			}
		}
	}
	w.writes++
	if err != nil {
		w.err, w.errAt = err, time.Since(w.start)
		if errors.Is(err, syscall.EPIPE) {
			w.err = fmt.Errorf("EPIPE after %d bytes: the logger closed the pipe's read end", w.bytes)
		}
	}
	return err
}

// blockBound is the longest write(2) non-blocking and spool may cost.
const blockBound = 10 * time.Millisecond
