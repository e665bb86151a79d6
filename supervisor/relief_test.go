package supervisor

import "testing"

// TestHandedLines: the messages relief drops from what a dead worker
// handed over are counted alike however the pipe was read.
func TestHandedLines(t *testing.T) {
	for _, tc := range []struct {
		pipe   string
		handed int64
		want   int64
	}{
		{"a\nbb\nccc\n", 0, 0},
		{"a\nbb\nccc\ndd\n", 9, 3},
		{"a\nbb\nccc\ndd\n", 2, 1},
		{"xxxxyyyy\nz\n", 4, 1}, // a part of a long line
		{"a\nbb\n", 100, 2},     // more handed than read (the rest stays)
	} {
		for chunk := 1; chunk <= len(tc.pipe); chunk++ {
			handed, got := tc.handed, int64(0)
			for b := []byte(tc.pipe); len(b) > 0; {
				n := min(chunk, len(b))
				got += handedLines(b[:n], &handed)
				b = b[n:]
			}
			if got != tc.want {
				t.Fatalf("%q with %d handed, read %d at a time: %d messages, want %d", tc.pipe, tc.handed, chunk, got, tc.want)
			}
		}
	}
}
