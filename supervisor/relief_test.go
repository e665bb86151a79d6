package supervisor

import "testing"

// TestHandedAccount: what relief counts as dropped after a non-blocking
// worker died does not depend on how the pipe was read: the bytes the dead
// worker handed over are counted already (its ring), but for their last
// message, which may have been in flight; what follows is counted.
func TestHandedAccount(t *testing.T) {
	for _, tc := range []struct {
		name          string
		pipe          string
		handed        int64
		lines, bytes  int64 // to count: messages, their bytes without newlines
		lastCountable bool
	}{
		{"nothing handed", "a\nbb\nccc", 0, 3, 6, true},
		{"all handed", "a\nbb\nccc\n", 9, 1, 3, false},
		{"handed then more", "a\nbb\nccc\ndd\ne", 9, 3, 6, true},
		{"one long handed message", "xxxxxxxx\nyy\n", 9, 2, 10, true},
		{"a part of a long line handed", "xxxxyyyy\nz\n", 4, 3, 9, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for chunk := 1; chunk <= len(tc.pipe); chunk++ {
				acc := handedAccount{left: tc.handed}
				var c reliefCount
				b := []byte(tc.pipe)
				for len(b) > 0 {
					n := min(chunk, len(b))
					c.add(acc.take(b[:n]))
					b = b[n:]
				}
				lines := c.newlines + c.inFlight
				if tc.pipe[len(tc.pipe)-1] != '\n' && c.lastCounted {
					lines++
				}
				if c.read != int64(len(tc.pipe)) || lines != tc.lines || c.counted-c.newlines != tc.bytes || c.lastCounted != tc.lastCountable {
					t.Fatalf("read in chunks of %d: read %d, %d lines of %d bytes (last counted %v); want %d lines of %d bytes (%v)",
						chunk, c.read, lines, c.counted-c.newlines, c.lastCounted, tc.lines, tc.bytes, tc.lastCountable)
				}
			}
		})
	}
}
