package reader_test

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/joyent/dockerlogger/reader"
)

// chunkReader returns at most n bytes per read, to exercise every way a
// stream can be cut.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(r.n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzReader checks, for any input, line-max and read size, that the
// messages give back the input exactly when parts are joined and a newline
// follows each complete line or Last part (a final unterminated line
// ends in a part not marked last), that no message is longer than line-max, that the partial
// metadata follows Docker's rules, and that the counters add up. The seed
// corpus in testdata/fuzz/FuzzReader runs as an ordinary test.
func FuzzReader(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(2), uint8(1))
	f.Add([]byte("0123456789abcdef\n"), uint8(8), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, lineMax, chunk uint8) {
		lm := int(lineMax%64) + 1
		ch := int(chunk%32) + 1
		s := &recSink{}
		r := &reader.Reader{Source: "stdout", LineMax: lm, Sink: s, Count: nil, Now: tickClock()}
		if err := r.Copy(&chunkReader{data, ch}); err != nil {
			t.Fatalf("Copy: %v", err)
		}
		terminated := len(data) == 0 || data[len(data)-1] == '\n'
		if g := reassemble(s.msgs, terminated); !bytes.Equal(g, data) {
			t.Fatalf("line-max %d, reads of %d: reassembled %q, want %q (messages %v)", lm, ch, g, data, got(s.msgs))
		}
		var n int
		for _, m := range s.msgs {
			if len(m.Line) > lm {
				t.Fatalf("message of %d bytes, line-max %d", len(m.Line), lm)
			}
			n += len(m.Line)
		}
		if want := len(data) - bytes.Count(data, []byte("\n")); n != want {
			t.Fatalf("message bytes %d, want %d", n, want)
		}
		checkGroups(t, s.msgs, !terminated)

		// The cut must not depend on where reads end: the same input in
		// one read gives the same messages.
		one := &recSink{}
		r = &reader.Reader{Source: "stdout", LineMax: lm, Sink: one, Now: tickClock()}
		if err := r.Copy(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprint(got(s.msgs)), fmt.Sprint(got(one.msgs)); g != w {
			t.Fatalf("line-max %d: reads of %d give %s, one read gives %s", lm, ch, g, w)
		}
	})
}
