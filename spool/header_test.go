package spool

import (
	"bytes"
	"testing"
)

// TestAppendHeader: a header followed by its line is the record
// AppendRecord makes, and DecodeMeta reads back what the header says from
// the record's first MaxOverhead bytes.
func TestAppendHeader(t *testing.T) {
	for _, rec := range []Record{
		{Seq: 7, Time: 1234, Line: []byte("hello")},
		{Seq: 1 << 40, Stderr: true, Partial: true, Ordinal: 3, ID: string(bytes.Repeat([]byte("i"), 64)), Time: -5, Line: bytes.Repeat([]byte("x"), 1000)},
		{Seq: 2, Partial: true, Last: true, Ordinal: 9, ID: "id", Line: nil},
	} {
		whole := AppendRecord(nil, &rec)
		parts := append(AppendHeader([]byte("prefix"), &rec)[len("prefix"):], rec.Line...)
		if !bytes.Equal(whole, parts) {
			t.Fatalf("header and line differ from the record: %x vs %x", parts, whole)
		}
		got, size, err := Decode(parts)
		if err != nil || size != len(whole) || !bytes.Equal(got.Line, rec.Line) {
			t.Fatalf("decode: %v, size %d of %d", err, size, len(whole))
		}
		meta, lineLen, err := DecodeMeta(whole[:min(len(whole), MaxOverhead)])
		want := rec
		want.Line = nil
		if err != nil || lineLen != len(rec.Line) || meta.Seq != want.Seq || meta.Time != want.Time || meta.Stderr != want.Stderr ||
			meta.Partial != want.Partial || meta.Last != want.Last || meta.Ordinal != want.Ordinal || meta.ID != want.ID {
			t.Fatalf("DecodeMeta: %+v, line %d, %v; want %+v, line %d", meta, lineLen, err, want, len(rec.Line))
		}
	}
	if _, _, err := DecodeMeta([]byte{magic0, magic1, 0}); err == nil {
		t.Fatal("DecodeMeta took a record cut short")
	}
}
