package readback

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// fastJSON decodes a record of the one shape Docker's json-file driver and
// package filelog write without attributes, {"log":"…","stream":"…",
// "time":"…"}, without reflection: encoding/json is most of the time of
// reading a json-file back. It says false for anything else (attributes,
// another order, an escape it leaves to encoding/json, bytes that are not
// UTF-8), and the caller decodes the record with encoding/json, so what it
// gives is always what encoding/json gives.
func fastJSON(rec []byte, e *Entry) bool {
	b, ok := bytes.CutPrefix(rec, []byte(`{"log":"`))
	if !ok {
		return false
	}
	line, b, ok := jsonString(b, e.Line[:0])
	if !ok {
		return false
	}
	if b, ok = bytes.CutPrefix(b, []byte(`,"stream":"`)); !ok {
		return false
	}
	i := bytes.IndexByte(b, '"')
	if i < 0 || bytes.IndexByte(b[:i], '\\') >= 0 {
		return false
	}
	stream := b[:i]
	if b, ok = bytes.CutPrefix(b[i+1:], []byte(`,"time":"`)); !ok {
		return false
	}
	if i = bytes.IndexByte(b, '"'); i < 0 {
		return false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(b[:i]))
	if err != nil {
		return false
	}
	if rest := bytes.TrimRight(b[i+1:], " \t\r\n"); len(rest) != 1 || rest[0] != '}' {
		return false
	}
	switch string(stream) { // no allocation for the usual two
	case "stdout":
		e.Source = "stdout"
	case "stderr":
		e.Source = "stderr"
	default:
		e.Source = string(stream)
	}
	e.Time, e.Line, e.Attrs = ts, line, nil
	e.Partial = len(line) == 0 || line[len(line)-1] != '\n'
	return true
}

// jsonString appends the JSON string at the start of b (after its opening
// quote) to dst, unescaped, and returns the rest after the closing quote.
func jsonString(b, dst []byte) ([]byte, []byte, bool) {
	for {
		i := 0
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		if i == len(b) || b[i] < 0x20 {
			return nil, nil, false
		}
		dst = append(dst, b[:i]...)
		if b[i] == '"' {
			if !utf8.Valid(dst) {
				return nil, nil, false // encoding/json replaces such bytes
			}
			return dst, b[i+1:], true
		}
		if i+1 >= len(b) {
			return nil, nil, false
		}
		switch c := b[i+1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			if i+6 > len(b) {
				return nil, nil, false
			}
			r := rune(0)
			for _, h := range b[i+2 : i+6] {
				switch {
				case h >= '0' && h <= '9':
					r = r<<4 | rune(h-'0')
				case h >= 'a' && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case h >= 'A' && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return nil, nil, false
				}
			}
			if r >= 0xd800 && r < 0xe000 {
				return nil, nil, false // surrogates: encoding/json's rules
			}
			dst = utf8.AppendRune(dst, r)
			b = b[i+6:]
			continue
		default:
			return nil, nil, false
		}
		b = b[i+2:]
	}
}
