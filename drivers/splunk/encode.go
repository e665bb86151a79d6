package splunk

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/daemon/logger"
)

// shape is what every event of one driver shares, encoded once: the
// parts of Docker's event objects that do not change from line to line.
type shape struct {
	format string
	// eventTail ends an inline or json event after its source: the tag
	// and the attributes, each left out when empty, and the brace.
	eventTail []byte
	// rawPrefix starts a raw event's text: "tag k=v k=v " (tag and
	// attributes each followed by a space).
	rawPrefix []byte
	// meta ends an event object after its time: host, then source,
	// sourcetype and index, each left out when empty, and the brace.
	meta []byte
}

func newShape(o *options, host, tag string, attrs map[string]string) *shape {
	s := &shape{format: o.format}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	// Docker's raw prefix follows the map's order, which changes from one
	// run to the next; its JSON attrs are sorted (encoding/json): sort both.
	sort.Strings(keys)
	if tag != "" {
		s.eventTail = appendString(append(s.eventTail, `,"tag":`...), tag)
		s.rawPrefix = append(append(s.rawPrefix, tag...), ' ')
	}
	if len(keys) > 0 {
		s.eventTail = append(s.eventTail, `,"attrs":{`...)
		for i, k := range keys {
			if i > 0 {
				s.eventTail = append(s.eventTail, ',')
			}
			s.eventTail = appendString(s.eventTail, k)
			s.eventTail = appendString(append(s.eventTail, ':'), attrs[k])
			s.rawPrefix = append(append(append(append(s.rawPrefix, k...), '='), attrs[k]...), ' ')
		}
		s.eventTail = append(s.eventTail, '}')
	}
	s.eventTail = append(s.eventTail, '}')
	s.meta = appendString(append(s.meta, `,"host":`...), host)
	for _, f := range [][2]string{{"source", o.source}, {"sourcetype", o.sourceType}, {"index", o.index}} {
		if f[1] != "" {
			s.meta = appendString(append(append(append(s.meta, ",\""...), f[0]...), "\":"...), f[1])
		}
	}
	s.meta = append(s.meta, '}')
	return s
}

// skip reports whether a line is left out: HEC refuses a blank event, and
// only the raw format's event is the bare line (Docker's driver skips
// those too; they count as delivered).
func (s *shape) skip(line []byte) bool {
	return s.format == formatRaw && len(bytes.TrimSpace(line)) == 0
}

// batch is the body of one post: HEC event objects one after the other,
// as Docker's driver writes them ({"event":…,"time":…,"host":…}).
type batch struct {
	shape   *shape
	gz      *compressor // nil without splunk-gzip
	body    bytes.Buffer
	scratch bytes.Buffer // a json-format line, compacted
	out     bytes.Buffer // the body compressed
}

func (b *batch) Size() int { return b.body.Len() }

// Reset empties the batch. A batch that a long line grew far past the
// batch size lets its buffers go rather than hold them while idle.
func (b *batch) Reset() {
	for _, buf := range []*bytes.Buffer{&b.body, &b.scratch, &b.out} {
		if buf.Cap() > 4*batchBytes {
			*buf = bytes.Buffer{}
		}
		buf.Reset()
	}
}

func (b *batch) Add(msg *logger.Message) {
	b.body.WriteString(`{"event":`)
	switch b.shape.format {
	case formatRaw:
		buf := b.body.AvailableBuffer()
		b.body.Write(appendJoined(buf, b.shape.rawPrefix, msg.Line))
	case formatJSON:
		// Docker's driver sends a line that parses as JSON as that value,
		// compacted and HTML-escaped as encoding/json re-encodes it. A
		// line that is not UTF-8 stays a string: its bytes would make the
		// whole post invalid.
		b.scratch.Reset()
		if utf8.Valid(msg.Line) && json.Compact(&b.scratch, msg.Line) == nil {
			b.body.WriteString(`{"line":`)
			json.HTMLEscape(&b.body, b.scratch.Bytes())
			b.appendSource(msg.Source)
			break
		}
		fallthrough
	default: // inline
		buf := b.body.AvailableBuffer()
		b.body.Write(appendString(append(buf, `{"line":`...), msg.Line))
		b.appendSource(msg.Source)
	}
	// The time as Docker's driver writes it: seconds with %f's six
	// decimals, of the float64 it computes.
	buf := append(b.body.AvailableBuffer(), `,"time":"`...)
	buf = strconv.AppendFloat(buf, float64(msg.Timestamp.UnixNano())/float64(time.Second), 'f', 6, 64)
	buf = append(buf, '"')
	b.body.Write(append(buf, b.shape.meta...))
}

// appendSource ends an inline or json event.
func (b *batch) appendSource(source string) {
	buf := appendString(append(b.body.AvailableBuffer(), `,"source":`...), source)
	b.body.Write(append(buf, b.shape.eventTail...))
}

func (b *batch) Encode() ([]byte, error) {
	if b.gz == nil {
		return b.body.Bytes(), nil
	}
	b.out.Reset()
	if err := b.gz.compress(&b.out, b.body.Bytes()); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return b.out.Bytes(), nil
}

// compressor is the one gzip writer of a driver, shared by its batches:
// its state takes most of a megabyte at the higher levels.
type compressor struct {
	mu    sync.Mutex
	level int
	w     *gzip.Writer
}

func (c *compressor) compress(dst io.Writer, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		w, err := gzip.NewWriterLevel(dst, c.level)
		if err != nil {
			return err
		}
		c.w = w
	} else {
		c.w.Reset(dst)
	}
	if _, err := c.w.Write(body); err != nil {
		return err
	}
	return c.w.Close()
}

// appendString appends s as a JSON string exactly as encoding/json
// writes it (json.Marshal, which Docker's driver uses): <, > and & and
// U+2028, U+2029 escaped, bytes that are not UTF-8 as \ufffd.
func appendString[S []byte | string](b []byte, s S) []byte {
	return appendJoined(b, "", s)
}

// appendJoined appends one JSON string: p followed by s.
func appendJoined[P, S []byte | string](b []byte, p P, s S) []byte {
	b = append(b, '"')
	b = appendEscaped(b, p)
	b = appendEscaped(b, s)
	return append(b, '"')
}

func appendEscaped[S []byte | string](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune([]byte(s[i:min(i+utf8.UTFMax, len(s))]))
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	return append(b, s[start:]...)
}
