package readback

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/plugins/logdriver"
	"github.com/docker/docker/daemon/logger/jsonfilelog/jsonlog"
)

// Format is the encoding of a log file.
type Format int

const (
	// Unknown: nothing read yet (an empty file).
	Unknown Format = iota
	JSONFile
	Local
)

func (f Format) String() string {
	switch f {
	case JSONFile:
		return "json-file"
	case Local:
		return "local"
	}
	return "unknown"
}

// ErrFormat is returned for a file that is neither json-file nor local.
var ErrFormat = errors.New("neither json-file nor local format")

// maxEntry bounds the size a local record's header may claim: the
// longest line the logger writes (line-max is at most 1g) and its
// metadata. A claim beyond it is not a local file, or a corrupt one.
const maxEntry = 1<<30 + 64<<10

// frameLen is the size of a local record's length header and footer.
const frameLen = 4

// Detect tells the format from the first bytes of a file: a json-file
// line starts with '{'; a local record with its length, which for any
// line the logger writes has a zero first byte, followed by the protobuf
// tag of a LogEntry field.
func Detect(head []byte) (Format, error) {
	if len(head) == 0 {
		return Unknown, nil
	}
	if head[0] == '{' {
		return JSONFile, nil
	}
	if len(head) < frameLen+1 {
		return Unknown, ErrFormat // too short to be either
	}
	n := binary.BigEndian.Uint32(head)
	if n == 0 || n > maxEntry {
		return Unknown, ErrFormat
	}
	// LogEntry's fields are 1 (source), 2 (time_nano), 3 (line),
	// 4 (partial), 5 (partial_log_metadata): tags 0x0a 0x10 0x1a 0x20 0x2a.
	switch head[frameLen] {
	case 0x0a, 0x10, 0x1a, 0x20, 0x2a:
		return Local, nil
	}
	return Unknown, ErrFormat
}

// Entry is one record of a log file, decoded.
type Entry struct {
	Source string
	Time   time.Time
	// Line is the message with its newline if the record ends a line
	// (json-file stores it so; local records Docker's Last flag).
	Line  []byte
	Attrs map[string]string
	// Partial: more of the same line follows in a later record.
	Partial bool
}

// next splits the first whole record off buf: its length in buf, or 0
// when buf holds no whole record yet. A record claiming more than
// maxEntry is an error.
func next(f Format, buf []byte) (int, error) {
	switch f {
	case JSONFile:
		i := bytes.IndexByte(buf, '\n')
		return i + 1, nil
	case Local:
		if len(buf) < frameLen {
			return 0, nil
		}
		n := binary.BigEndian.Uint32(buf)
		if n > maxEntry {
			return 0, fmt.Errorf("local record of %d bytes, more than %d: %w", n, maxEntry, ErrFormat)
		}
		total := int(n) + 2*frameLen
		if len(buf) < total {
			return 0, nil
		}
		if m := binary.BigEndian.Uint32(buf[total-frameLen:]); m != n {
			return 0, fmt.Errorf("local record header says %d bytes, footer %d: %w", n, m, ErrFormat)
		}
		return total, nil
	}
	return 0, ErrFormat
}

// decoder turns records into Entries, reusing Docker's types.
type decoder struct {
	jl jsonlog.JSONLog
	le logdriver.LogEntry
}

func (d *decoder) decode(f Format, rec []byte, e *Entry) error {
	switch f {
	case JSONFile:
		if fastJSON(rec, e) {
			return nil
		}
		return d.decodeJSON(rec, e)
	case Local:
		d.le.Reset()
		body := rec[frameLen : len(rec)-frameLen]
		if err := d.le.Unmarshal(body); err != nil {
			return fmt.Errorf("local record: %v: %w", err, ErrFormat)
		}
		e.Source = d.le.Source
		e.Time = time.Unix(0, d.le.TimeNano).UTC()
		e.Line = append(e.Line[:0], d.le.Line...)
		e.Partial = d.le.Partial && (d.le.PartialLogMetadata == nil || !d.le.PartialLogMetadata.Last)
		if !e.Partial {
			e.Line = append(e.Line, '\n')
		}
		e.Attrs = nil
		return nil
	}
	return ErrFormat
}

// decodeJSON decodes a json-file record with encoding/json into Docker's
// own type, as Docker's reader does.
func (d *decoder) decodeJSON(rec []byte, e *Entry) error {
	d.jl.Reset()
	if err := json.Unmarshal(rec, &d.jl); err != nil {
		return fmt.Errorf("json-file record: %v: %w", err, ErrFormat)
	}
	e.Source, e.Time = d.jl.Stream, d.jl.Created
	e.Line = append(e.Line[:0], d.jl.Log...)
	e.Partial = len(e.Line) == 0 || e.Line[len(e.Line)-1] != '\n'
	e.Attrs = nil
	if len(d.jl.Attrs) > 0 {
		e.Attrs = make(map[string]string, len(d.jl.Attrs))
		for k, v := range d.jl.Attrs {
			e.Attrs[k] = v
		}
	}
	return nil
}
