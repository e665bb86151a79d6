package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Record is one log message as the spool keeps it.
type Record struct {
	Seq     uint64 // assigned by Append; increases by one per record
	Stderr  bool   // the stream: stderr, else stdout
	Time    int64  // the message's timestamp, Unix nanoseconds
	Partial bool   // the message is one part of a longer line
	Last    bool   // the last part of a partial line
	Ordinal int32  // the part's number, from 1
	ID      string // the partial line's id
	Line    []byte // the message bytes, no newline
}

// On-disk layout of a record, little endian:
//
//	0  magic   2 bytes 0xD7 0x5A
//	2  flags   1 byte  bit 0 stderr, 1 partial, 2 last
//	3  idLen   1 byte
//	4  bodyLen 4 bytes length of everything after the header
//	8  crc     4 bytes CRC32C of bytes 0..7 and the body
//	12 body:   seq 8, time 8, ordinal 4, id idLen, line
//
// The magic lets a reader find the next record after a damaged one; the
// length and CRC catch a torn or corrupt record before anything of it is
// delivered.
const (
	HeaderSize = 12
	fixedBody  = 20
	magic0     = 0xD7
	magic1     = 0x5A
	// MaxBody bounds a record's body: line-max is at most 1 GiB.
	MaxBody = 1<<30 + 1024
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors from Decode.
var (
	ErrShort   = errors.New("record cut short")
	ErrCorrupt = errors.New("record corrupt")
)

// MaxOverhead is the most a record takes on disk besides its line: header,
// fixed fields and the longest partial id.
const MaxOverhead = HeaderSize + fixedBody + 255

// Size is how many bytes rec takes on disk.
func (rec *Record) Size() int { return HeaderSize + fixedBody + len(rec.ID) + len(rec.Line) }

// AppendRecord appends rec's encoding to dst. An ID longer than 255 bytes
// is cut (Docker's are 64).
func AppendRecord(dst []byte, rec *Record) []byte {
	return append(AppendHeader(dst, rec), rec.Line...)
}

// AppendHeader appends rec's encoding but for its line, which follows it
// (the ring copies the line from where the reader holds it).
func AppendHeader(dst []byte, rec *Record) []byte {
	id := rec.ID
	if len(id) > 255 {
		id = id[:255]
	}
	var flags byte
	if rec.Stderr {
		flags |= 1
	}
	if rec.Partial {
		flags |= 2
	}
	if rec.Last {
		flags |= 4
	}
	start := len(dst)
	body := fixedBody + len(id) + len(rec.Line)
	dst = append(dst, magic0, magic1, flags, byte(len(id)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(body))
	dst = append(dst, 0, 0, 0, 0) // crc, below
	dst = binary.LittleEndian.AppendUint64(dst, rec.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(rec.Time))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(rec.Ordinal))
	dst = append(dst, id...)
	b := dst[start:]
	crc := crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, b[HeaderSize:])
	binary.LittleEndian.PutUint32(b[8:], crc32.Update(crc, castagnoli, rec.Line))
	return dst
}

// DecodeMeta decodes what the start of a record says about it, without
// its line or a CRC check: b holds at least the record's first
// MaxOverhead bytes, or all of it. lineLen is the length of its line.
func DecodeMeta(b []byte) (rec Record, lineLen int, err error) {
	if len(b) < HeaderSize+fixedBody || b[0] != magic0 || b[1] != magic1 {
		return rec, 0, ErrCorrupt
	}
	flags, idLen := b[2], int(b[3])
	body := int(binary.LittleEndian.Uint32(b[4:]))
	if flags&^7 != 0 || body < fixedBody+idLen || len(b) < HeaderSize+fixedBody+idLen {
		return rec, 0, ErrCorrupt
	}
	rec = decodeFields(flags, idLen, b[HeaderSize:])
	return rec, body - fixedBody - idLen, nil
}

// decodeFields decodes a record's flags and the fixed fields and id at
// the start of its body p: all of it but its line.
func decodeFields(flags byte, idLen int, p []byte) (rec Record) {
	rec.Stderr = flags&1 != 0
	rec.Partial = flags&2 != 0
	rec.Last = flags&4 != 0
	rec.Seq = binary.LittleEndian.Uint64(p)
	rec.Time = int64(binary.LittleEndian.Uint64(p[8:]))
	rec.Ordinal = int32(binary.LittleEndian.Uint32(p[16:]))
	rec.ID = string(p[fixedBody : fixedBody+idLen])
	return rec
}

// Decode decodes the record at the start of b and returns it with its
// size. rec.Line and rec.ID alias b. ErrShort means b holds only the
// beginning of a record that may be valid; ErrCorrupt that the bytes at
// b[0] are not a record.
func Decode(b []byte) (rec Record, size int, err error) {
	if len(b) >= 1 && b[0] != magic0 || len(b) >= 2 && b[1] != magic1 {
		return rec, 0, ErrCorrupt
	}
	if len(b) < HeaderSize {
		return rec, 0, ErrShort
	}
	flags, idLen := b[2], int(b[3])
	body := int(binary.LittleEndian.Uint32(b[4:]))
	if flags&^7 != 0 || body < fixedBody+idLen || body > MaxBody {
		return rec, 0, ErrCorrupt
	}
	size = HeaderSize + body
	if len(b) < size {
		return rec, 0, ErrShort
	}
	crc := crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, b[HeaderSize:size])
	if crc != binary.LittleEndian.Uint32(b[8:]) {
		return rec, 0, ErrCorrupt
	}
	p := b[HeaderSize:size]
	rec = decodeFields(flags, idLen, p)
	rec.Line = p[fixedBody+idLen:]
	return rec, size, nil
}
