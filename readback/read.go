package readback

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"time"
)

// Options are docker logs' flags.
type Options struct {
	// Tail is how many entries at the end of the files to start from;
	// negative for all. Counted in entries, as Docker's reader does (a
	// line cut into partial messages counts once per part).
	Tail int
	// Since and Until (zero: unset) filter by the entries' timestamps as
	// Docker's reader does: entries before Since are skipped until the
	// first that is not; the first entry after Until ends the reading.
	Since, Until time.Time
	Timestamps   bool // each line starts with its time, RFC 3339 with nanoseconds
	Details      bool // each line starts with its attributes (k=v,...)
	// Follow goes on reading as the file grows and rotates, until its
	// writer has closed it for good (or ctx ends).
	Follow bool
	// Stdout and Stderr get the lines of each stream.
	Stdout, Stderr io.Writer
	// Poll is how often a followed file is looked at; 100 ms if zero.
	Poll time.Duration
}

// rfc3339NanoFixed is the time format of docker logs -t.
const rfc3339NanoFixed = "2006-01-02T15:04:05.000000000Z07:00"

// Read writes the entries of the log file at path and its rotations to
// o.Stdout and o.Stderr. The error says which file and why.
func Read(ctx context.Context, path string, o Options) error {
	if o.Poll <= 0 {
		o.Poll = 100 * time.Millisecond
	}
	cur, err := openRegular(path)
	if err != nil {
		return err
	}
	defer func() { cur.Close() }()
	curInfo, err := cur.Stat()
	if err != nil {
		return err
	}
	names, err := rotated(path)
	if err != nil {
		return err
	}
	w := newWriter(o)
	defer w.flush()
	fw := forwarder{since: o.Since, until: o.Until}
	emit := func(e *Entry) bool {
		if fw.pass(e) {
			w.write(e)
		}
		return !fw.done
	}

	var ring *tailRing
	take := emit
	if o.Tail >= 0 {
		ring = &tailRing{n: o.Tail}
		take = ring.add
	}
	for _, name := range names {
		if st, err := os.Stat(name); err == nil && sameFile(st, curInfo) {
			continue // rotated since we opened the current file
		}
		rc, _, err := openRotated(name)
		if err != nil {
			return err
		}
		s := &stream{name: name, r: rc}
		more, err := s.read(take, true)
		rc.Close()
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	s := &stream{name: path, r: cur}
	more, err := s.read(take, !o.Follow)
	if err != nil {
		return err
	}
	if ring != nil {
		more = ring.flush(emit)
	}
	if !more || !o.Follow {
		return nil
	}
	return follow(ctx, path, &cur, curInfo, s, emit, w, o.Poll)
}

// follow reads path on as it grows and rotates. *cur is the current file
// as far as s has read it; follow replaces it at each rotation.
func follow(ctx context.Context, path string, cur **os.File, curInfo os.FileInfo, s *stream, emit func(*Entry) bool, w *writer, poll time.Duration) error {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		more, err := s.read(emit, false)
		if err != nil || !more {
			return err
		}
		w.flush()
		st, err := os.Stat(path)
		switch {
		case err == nil && !sameFile(st, curInfo) && !writing(*cur):
			// Rotated, and the writer let go of this file, which it
			// does only once the new one is in place and locked: what
			// this one holds now is all it will ever hold.
			if more, err := s.read(emit, true); err != nil || !more {
				return err
			}
			// More than one rotation since the last look: the files
			// between this one and the current are read whole first.
			between, nf, err := openNewer(path, *cur, curInfo, s.off+int64(len(s.buf)))
			if err != nil {
				return err
			}
			for i, r := range between {
				more, err := (&stream{name: r.name, r: r.rc}).read(emit, true)
				if err != nil || !more {
					closeAll(between[i:])
					if nf != nil {
						nf.Close()
					}
					return err
				}
				r.rc.Close()
			}
			if nf == nil {
				break // moved on again: look next tick
			}
			if curInfo, err = nf.Stat(); err != nil {
				nf.Close()
				return err
			}
			(*cur).Close()
			*cur = nf
			s = &stream{name: path, r: nf}
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return err
		case err == nil && sameFile(st, curInfo) && !writing(*cur):
			// Nobody holds the file: the logger closed it at the end of
			// its inputs. Look again whether it rotated in between.
			if st, err := os.Stat(path); err == nil && !sameFile(st, curInfo) {
				continue
			}
			_, err := s.read(emit, true)
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// stream decodes the records of one file as they come.
type stream struct {
	name   string
	r      io.Reader
	format Format
	buf    []byte
	off    int64 // file offset of buf[0]
	dec    decoder
	e      Entry
	eof    bool
}

// read hands each whole record to take until the file's end (for now),
// or until take says no more (false). final says that nothing more will
// be written: an unfinished record at the end is a torn write and is
// left out, as Docker's reader leaves it.
func (s *stream) read(take func(*Entry) bool, final bool) (bool, error) {
	if s.buf == nil {
		s.buf = make([]byte, 0, 256<<10)
	}
	for {
		if len(s.buf) == cap(s.buf) {
			nb := make([]byte, len(s.buf), 2*cap(s.buf))
			copy(nb, s.buf)
			s.buf = nb
		}
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if s.format == Unknown && len(s.buf) > 0 {
			f, ferr := Detect(s.buf)
			switch {
			case ferr != nil && len(s.buf) <= frameLen && err == nil:
				continue // too few bytes to tell yet
			case ferr != nil && len(s.buf) <= frameLen && !final:
				return true, nil
			case ferr != nil:
				return false, fmt.Errorf("%s: %w", s.name, ferr)
			}
			s.format = f
		}
		p := 0
		for s.format != Unknown {
			m, derr := next(s.format, s.buf[p:])
			if derr != nil {
				return false, fmt.Errorf("%s at byte %d: %w", s.name, s.off+int64(p), derr)
			}
			if m == 0 {
				break
			}
			if derr := s.dec.decode(s.format, s.buf[p:p+m], &s.e); derr != nil {
				return false, fmt.Errorf("%s at byte %d: %w", s.name, s.off+int64(p), derr)
			}
			p += m
			if !take(&s.e) {
				return false, nil
			}
		}
		s.off += int64(p)
		s.buf = s.buf[:copy(s.buf, s.buf[p:])]
		if err == io.EOF || (err == nil && n == 0) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("read %s: %w", s.name, err)
		}
	}
}

// forwarder filters by time as Docker's loggerutils forwarder does.
type forwarder struct {
	since, until time.Time
	done         bool
}

// pass says whether e is shown; once an entry is past until, nothing
// is, and done is set.
func (f *forwarder) pass(e *Entry) bool {
	if f.done {
		return false
	}
	if !f.since.IsZero() {
		if e.Time.Before(f.since) {
			return false // skipped; reading goes on
		}
		f.since = time.Time{} // timestamps need not be monotonic
	}
	if !f.until.IsZero() && e.Time.After(f.until) {
		f.done = true
		return false
	}
	return true
}

// tailRing keeps the last n entries.
type tailRing struct {
	n     int
	es    []Entry
	start int
}

func (t *tailRing) add(e *Entry) bool {
	if t.n == 0 {
		return true
	}
	c := *e
	c.Line = append([]byte(nil), e.Line...)
	if len(t.es) < t.n {
		t.es = append(t.es, c)
		return true
	}
	t.es[t.start] = c
	t.start = (t.start + 1) % t.n
	return true
}

// flush hands the entries kept to emit, oldest first.
func (t *tailRing) flush(emit func(*Entry) bool) bool {
	for i := range t.es {
		if !emit(&t.es[(t.start+i)%len(t.es)]) {
			return false
		}
	}
	t.es = nil
	return true
}

// writer prints entries as docker logs does, a line's partial messages
// joined under the first one's prefix.
type writer struct {
	o       Options
	out     map[string]*bufio.Writer
	pending map[string]bool // a stream's line is unfinished
	last    string          // the stream written last
}

func newWriter(o Options) *writer {
	w := &writer{o: o, out: map[string]*bufio.Writer{}, pending: map[string]bool{}}
	if o.Stdout != nil {
		w.out["stdout"] = bufio.NewWriterSize(o.Stdout, 64<<10)
	}
	if o.Stderr != nil {
		w.out["stderr"] = bufio.NewWriterSize(o.Stderr, 64<<10)
	}
	return w
}

func (w *writer) write(e *Entry) {
	b := w.out[e.Source]
	if b == nil {
		return
	}
	if e.Source != w.last {
		// In the order they were logged, as docker logs writes them,
		// when both go to one terminal.
		if p := w.out[w.last]; p != nil {
			p.Flush()
		}
		w.last = e.Source
	}
	if !w.pending[e.Source] {
		if w.o.Timestamps {
			var ts [len(rfc3339NanoFixed) + 8]byte
			b.Write(e.Time.UTC().AppendFormat(ts[:0], rfc3339NanoFixed))
			b.WriteByte(' ')
		}
		if w.o.Details {
			b.Write(attrs(e.Attrs))
			b.WriteByte(' ')
		}
	}
	b.Write(e.Line)
	w.pending[e.Source] = e.Partial
}

func (w *writer) flush() {
	for _, b := range w.out {
		b.Flush()
	}
}

// attrs formats attributes as docker logs --details does.
func attrs(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, url.QueryEscape(k)...)
		b = append(b, '=')
		b = append(b, url.QueryEscape(m[k])...)
	}
	return b
}
