package filelog

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/daemon/logger"
)

// JSON is the json-file driver's logger: each message is one line of
// Docker's jsonlog format, written through a File.
type JSON struct {
	file  *File
	attrs []byte // the "attrs" object, already JSON; nil for none
	// The last timestamp formatted, under file.mu: the reader stamps every
	// line of one read with the same time.
	lastTS  time.Time
	lastFmt []byte
}

// NewJSON opens the file for a json-file logger. attrs is the JSON object
// of extra attributes (labels, env, tag) Docker puts on every line, or nil.
func NewJSON(o Options, attrs []byte) (*JSON, error) {
	o.complete = completeJSON
	f, err := Open(o)
	if err != nil {
		return nil, err
	}
	return &JSON{file: f, attrs: attrs}, nil
}

// ErrYearRange is Docker's refusal of a timestamp it cannot write.
var ErrYearRange = errors.New("error writing log message to buffer: time.MarshalJSON: year outside of range [0,9999]")

// Log encodes msg into the buffer; it owns msg and puts it back in the pool.
func (j *JSON) Log(msg *logger.Message) error {
	if y := msg.Timestamp.Year(); y < 0 || y >= 10000 {
		logger.PutMessage(msg)
		return ErrYearRange
	}
	last := msg.PLogMetaData == nil || msg.PLogMetaData.Last
	j.file.mu.Lock()
	if msg.Timestamp != j.lastTS || j.lastFmt == nil {
		j.lastTS = msg.Timestamp
		j.lastFmt = msg.Timestamp.AppendFormat(j.lastFmt[:0], time.RFC3339Nano)
	}
	var err error
	if len(msg.Line) <= longLine {
		err = j.file.append(msg.Timestamp, int64(len(msg.Line)), func(b []byte) []byte {
			return appendJSON(b, msg.Line, last, msg.Source, j.attrs, j.lastFmt)
		})
	} else {
		pieces := jsonPieces{line: msg.Line, newline: last, stream: msg.Source, attrs: j.attrs, ts: j.lastFmt, piece: longLine}
		err = j.file.appendLong(msg.Timestamp, int64(len(msg.Line)), pieces.next)
	}
	j.file.mu.Unlock()
	logger.PutMessage(msg)
	return err
}

// SetAccounting makes the logger report what it wrote and lost (see
// Accounting). Call it before the first message.
func (j *JSON) SetAccounting(a Accounting) { j.file.SetAccounting(a) }

// Flush writes what is buffered.
func (j *JSON) Flush() error { return j.file.Flush() }

// Unwritten returns the lines taken and not yet written (File.Unwritten).
func (j *JSON) Unwritten() (lines, bytes int64) { return j.file.Unwritten() }

// Close flushes and closes the file, waiting for any compression.
func (j *JSON) Close() error { return j.file.Close() }

// CloseHandingOver closes for a live upgrade (File.CloseHandingOver).
func (j *JSON) CloseHandingOver() error { return j.file.CloseHandingOver() }

// Name is the driver's name.
func (j *JSON) Name() string { return "json-file" }

// AppendJSON appends one line of Docker's json-file format to dst:
// {"log":…,"stream":…,"attrs":…,"time":…}\n with Docker's key order,
// omissions and escaping. newline says the message ends a line, so the log
// text gets its "\n". The year of ts must be within 0…9999.
func AppendJSON(dst, line []byte, newline bool, stream string, attrs []byte, ts time.Time) []byte {
	var tb [64]byte
	return appendJSON(dst, line, newline, stream, attrs, ts.AppendFormat(tb[:0], time.RFC3339Nano))
}

// appendJSON is AppendJSON with the time already formatted.
func appendJSON(dst, line []byte, newline bool, stream string, attrs, ts []byte) []byte {
	dst = append(dst, '{')
	first := true
	if len(line) > 0 || newline {
		first = false
		dst = append(dst, `"log":`...)
		dst = appendString(dst, line, newline)
	}
	return appendFields(dst, first, stream, attrs, ts)
}

// appendFields appends what follows "log" (first: there was no "log").
func appendFields(dst []byte, first bool, stream string, attrs, ts []byte) []byte {
	if stream != "" {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `"stream":`...)
		dst = appendStream(dst, stream)
	}
	if len(attrs) > 0 {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `"attrs":`...)
		dst = append(dst, attrs...)
	}
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, `"time":"`...)
	dst = append(dst, ts...)
	return append(dst, `"}`+"\n"...)
}

// longLine is the longest line json-file encodes whole; a longer one is
// encoded and written in pieces of this many bytes of line (File.appendLong),
// as its encoding can be six times the line.
const longLine = 16 << 10

// jsonPieces encodes one message as appendJSON does, a piece at a time.
type jsonPieces struct {
	line          []byte
	newline       bool
	stream        string
	attrs, ts     []byte
	piece         int // bytes of line per call
	started, tail bool
}

// next appends the next piece of the encoding to dst; done says it was
// the last.
func (p *jsonPieces) next(dst []byte) (_ []byte, done bool) {
	if !p.started {
		p.started = true
		if len(p.line) == 0 && !p.newline {
			return appendJSON(dst, nil, false, p.stream, p.attrs, p.ts), true
		}
		dst = append(dst, `{"log":"`...)
	}
	if len(p.line) > 0 {
		n := runeCut(p.line, p.piece)
		dst = appendEscaped(dst, p.line[:n])
		p.line = p.line[n:]
		return dst, false
	}
	if p.newline {
		dst = append(dst, '\\', 'n')
	}
	dst = append(dst, '"')
	return appendFields(dst, false, p.stream, p.attrs, p.ts), true
}

// runeCut returns where to end a piece of about n bytes of s: not
// inside a valid UTF-8 sequence, which would be encoded as invalid. The
// piece ends before the sequence that n cuts, or after it if that
// sequence is the piece's first.
func runeCut(s []byte, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for j := n - 1; j >= 0 && j > n-utf8.UTFMax; j-- {
		if !utf8.RuneStart(s[j]) {
			continue
		}
		if s[j] >= utf8.RuneSelf {
			if _, size := utf8.DecodeRune(s[j:]); j+size > n {
				if j > 0 {
					return j
				}
				return size
			}
		}
		return n
	}
	return n // stray continuation bytes: each is invalid alone
}

// safe marks the ASCII bytes Docker's encoder copies unescaped.
var safe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '\\' && b != '"' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// nextSpecial returns the index of the first byte of s at or after i that
// is not plain ASCII text (a control byte, '"', '\\', '<', '>', '&', or a
// byte >= 0x80), or len(s). It tests eight bytes at a time: most log text
// is plain.
func nextSpecial(s []byte, i int) int {
	for ; i+16 <= len(s); i += 16 {
		w := s[i : i+16]
		if m := specialMask(binary.LittleEndian.Uint64(w[:8])); m != 0 {
			// Borrows only run upwards: the lowest flag is a true one.
			return i + bits.TrailingZeros64(m)>>3
		}
		if m := specialMask(binary.LittleEndian.Uint64(w[8:])); m != 0 {
			return i + 8 + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(s); i++ {
		if b := s[i]; b >= utf8.RuneSelf || !safe[b] {
			return i
		}
	}
	return i
}

// specialMask has the high bit set of (at least) the lowest byte of x that
// is not plain text, and is 0 if all eight are plain.
func specialMask(x uint64) uint64 {
	// '"' 0x22 and '&' 0x26 differ in bit 2, '<' 0x3c and '>' 0x3e in
	// bit 1: one comparison each pair.
	qa := (x | ones*0x04) ^ (ones * 0x26)
	lg := (x | ones*0x02) ^ (ones * 0x3e)
	bs := x ^ (ones * '\\')
	return (x | // bytes >= 0x80
		(x-ones*0x20)&^x | // bytes < 0x20
		(qa-ones)&^qa |
		(lg-ones)&^lg |
		(bs-ones)&^bs) & highs
}

// appendString appends s as a JSON string exactly as Docker's jsonlog
// does: HTML characters and control characters as \u00XX, invalid UTF-8
// as \ufffd, U+2028 and U+2029 escaped; nl adds an escaped newline.
func appendString(dst, s []byte, nl bool) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	if nl {
		dst = append(dst, '\\', 'n')
	}
	return append(dst, '"')
}

// appendEscaped appends s escaped, without quotes.
func appendEscaped(dst, s []byte) []byte {
	start := 0
	for i := nextSpecial(s, 0); i < len(s); i = nextSpecial(s, i) {
		b := s[i]
		if b < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRune(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendStream appends the stream name; "stdout" and "stderr" need no
// escaping and no conversion to bytes.
func appendStream(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || !safe[s[i]] {
			return appendString(dst, []byte(s), false)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
