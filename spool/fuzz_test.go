package spool

import (
	"bytes"
	"testing"
)

// FuzzSpoolDecode feeds arbitrary bytes to Decode: it never panics, and
// whatever it accepts encodes back to exactly the bytes it consumed.
func FuzzSpoolDecode(f *testing.F) {
	f.Add(AppendRecord(nil, &Record{Seq: 1, Time: 5, Line: []byte("hello")}))
	f.Add(AppendRecord(nil, &Record{Seq: 9, Stderr: true, Partial: true, Last: true, Ordinal: 3, ID: "abc", Line: []byte("part")}))
	f.Add([]byte{magic0, magic1, 0, 0, 255, 255, 255, 255})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, n, err := Decode(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with size %d", err, n)
			}
			return
		}
		if n < HeaderSize+fixedBody || n > len(b) {
			t.Fatalf("size %d of %d bytes", n, len(b))
		}
		if again := AppendRecord(nil, &rec); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded %x, decoded from %x", again, b[:n])
		}
	})
}
