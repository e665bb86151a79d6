package diag

import (
	"bytes"
	"io"
	"testing"
)

type chunks [][]byte

func (c *chunks) Read(p []byte) (int, error) {
	if len(*c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, (*c)[0])
	*c = (*c)[1:]
	return n, nil
}

// A driver library's message without a newline must not swallow the
// start of our next line: the stats line is found at a line start.
func TestCopyLinesKeepsOursAtLineStart(t *testing.T) {
	in := chunks{
		[]byte("[Error] Fluent#write: ack error"),
		[]byte("dockerlogger: stats lines_read=3\n"),
		[]byte("plain line\n"),
		[]byte("dockerlogger: next\n"),
	}
	var out bytes.Buffer
	CopyLines(&out, &in)
	want := "[Error] Fluent#write: ack error\ndockerlogger: stats lines_read=3\nplain line\ndockerlogger: next\n"
	if out.String() != want {
		t.Fatalf("got %q\nwant %q", out.String(), want)
	}
}
