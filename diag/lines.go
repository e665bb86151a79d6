package diag

import (
	"bytes"
	"io"
)

// CopyLines copies r to w. Some driver libraries (fluent-logger-golang)
// print to stderr without a final newline; a line of ours
// ("dockerlogger: ...") that would follow on the same line starts on a new
// one, so the stats line can always be found at a line start.
func CopyLines(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	atStart := true
	for {
		n, err := r.Read(buf)
		if n > 0 {
			b := buf[:n]
			if !atStart && bytes.HasPrefix(b, []byte("dockerlogger: ")) {
				w.Write([]byte{'\n'})
			}
			w.Write(b)
			atStart = b[len(b)-1] == '\n'
		}
		if err != nil {
			return
		}
	}
}
